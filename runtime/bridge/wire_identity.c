/* A message's identity: file hashes, and the receiver's comparison
 * (wire_identity.h). */
#include "wire_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"
#include "xxhash64.h"

lw_status lw_wire_hash_file(const char *path, uint64_t *h)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lw_fail(LW_ERR_IO, "hashing %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lw_fail(LW_ERR_IO, "hashing %s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    const void *p = NULL;
    if (n > 0 && (p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        close(fd);
        return lw_fail(LW_ERR_IO, "hashing %s: mmap: %s", path, strerror(errno));
    }
    *h = lw_xxh64(n ? p : "", n, 0);
    if (*h == 0) *h = 1;   /* 0 means "not known" in a message */
    if (n > 0) munmap((void *)p, n);
    close(fd);
    return LW_OK;
}

/* A model's weights and tokenizer hashes; required: fail if a file is
 * missing, else leave 0. */
static lw_status model_hashes(const lw_model_config *c, bool required, uint64_t *weights, uint64_t *tokenizer)
{
    *weights = *tokenizer = 0;
    if (c->load.random_weights) {   /* the files are not read: name the draw instead */
        char text[256];
        int n = snprintf(text, sizeof text, "random-weights:%llu:%s", (unsigned long long)c->load.seed, c->name);
        *weights = *tokenizer = lw_xxh64(text, (size_t)n, 0) | 1;
        return LW_OK;
    }
    lw_status st;
    if (!required && (!lw_file_exists(c->weights_path) || !lw_file_exists(c->tokenizer_path))) return LW_OK;
    if ((st = lw_wire_hash_file(c->weights_path, weights))) return lw_fail_wrap(st, "model %s", c->name);
    if (!strcmp(c->tokenizer_path, c->weights_path)) *tokenizer = *weights;   /* a GGUF holds both */
    else if ((st = lw_wire_hash_file(c->tokenizer_path, tokenizer))) return lw_fail_wrap(st, "model %s", c->name);
    return LW_OK;
}

lw_status lw_wire_identity_make(const lw_manifest *m, const char *task, const char *bridge_path, lw_wire_role role,
                                lw_wire_identity *id)
{
    memset(id, 0, sizeof *id);
    if (strlen(m->name) >= sizeof id->pair || strlen(task) >= sizeof id->task)
        return lw_fail(LW_ERR_INVALID, "identity: pair or task name longer than %d characters",
                       LW_WIRE_NAME_BYTES - 1);
    memcpy(id->pair, m->name, strlen(m->name));
    memcpy(id->task, task, strlen(task));
    lw_status st = lw_wire_hash_file(bridge_path, &id->bridge);
    if (!st) st = model_hashes(&m->sender, role == LW_WIRE_SENDER, &id->sender_weights, &id->sender_tokenizer);
    if (!st)
        st = model_hashes(&m->receiver, role == LW_WIRE_RECEIVER, &id->receiver_weights, &id->receiver_tokenizer);
    return st ? lw_fail_wrap(st, "the message identity") : LW_OK;
}

static lw_status differs(const char *what, uint64_t msg, uint64_t mine, const char *path)
{
    return lw_fail(LW_ERR_INVALID, "message made with another %s: its XXH64 is %016llx, this side's (%s) is %016llx",
                   what, (unsigned long long)msg, path, (unsigned long long)mine);
}

lw_status lw_wire_identity_check(const lw_wire_identity *msg, const lw_wire_identity *mine, const lw_manifest *m,
                                 const char *bridge_path)
{
    if (strncmp(msg->pair, mine->pair, sizeof msg->pair))
        return lw_fail(LW_ERR_INVALID, "message from pair %.63s; this is pair %.63s", msg->pair, mine->pair);
    if (strncmp(msg->task, mine->task, sizeof msg->task))
        return lw_fail(LW_ERR_INVALID, "message for task %.63s; this side reads task %.63s", msg->task, mine->task);
    if (msg->bridge != mine->bridge) return differs("bridge", msg->bridge, mine->bridge, bridge_path);
    struct {
        const char *what;
        uint64_t a, b;
        const char *path;
    } f[4] = {
        {"sender weights file", msg->sender_weights, mine->sender_weights, m->sender.weights_path},
        {"sender tokenizer file", msg->sender_tokenizer, mine->sender_tokenizer, m->sender.tokenizer_path},
        {"receiver weights file", msg->receiver_weights, mine->receiver_weights, m->receiver.weights_path},
        {"receiver tokenizer file", msg->receiver_tokenizer, mine->receiver_tokenizer, m->receiver.tokenizer_path},
    };
    for (int i = 0; i < 4; i++)   /* compared where both sides know the file */
        if (f[i].a && f[i].b && f[i].a != f[i].b) return differs(f[i].what, f[i].a, f[i].b, f[i].path);
    return LW_OK;
}
