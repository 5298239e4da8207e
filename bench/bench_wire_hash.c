/* How long the wire's file identity takes (docs/wire.md "Why XXH64"):
 * lw_wire_hash_file (XXH64 of the whole file, mmapped) on each file given,
 * twice, with the wall time of each.
 * usage: out/bench/bench_wire_hash FILE... */
#include <stdio.h>

#include "bench_time.h"
#include "wire_identity.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    for (int round = 1; round <= 2; round++)
        for (int i = 1; i < argc; i++) {
            uint64_t h;
            double t0 = bench_now();
            if (lw_wire_hash_file(argv[i], &h) != LW_OK) {
                fprintf(stderr, "%s\n", lw_last_error());
                return 1;
            }
            printf("round %d  %016llx  %.3f s  %s\n", round, (unsigned long long)h, bench_now() - t0, argv[i]);
        }
    return 0;
}
