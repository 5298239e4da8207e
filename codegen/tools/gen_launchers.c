/* gen_launchers OUT: writes the kernel launcher header (codegen/gen_launchers.h)
 * to OUT. A build tool of lwc itself: the Makefile runs it before compiling
 * liblwrt, which includes the header. OUT is replaced atomically and only
 * when its text changes, so an unchanged table recompiles nothing. */
#include <stdio.h>

#include "fileutil.h"
#include "gen_launchers.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_launchers OUT.h\n");
        return 2;
    }
    lw_strbuf sb = {0};
    lw_status st = lw_gen_kernel_launchers(&sb);
    if (!st) st = lw_write_file_atomic(argv[1], sb.data, sb.len, NULL);
    lw_sb_free(&sb);
    if (st) {
        fprintf(stderr, "gen_launchers: %s\n", lw_last_error());
        return 1;
    }
    return 0;
}
