/* Real models or random weights of their shapes; see real_models.h. */
#include "real_models.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "manifest.h"
#include "random_weights.h"
#include "testlib.h"

static bool present(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

bool tl_default_pair_present(void)
{
    lw_manifest m;
    ck_assert_msg(lw_manifest_load(tl_src(TL_DEFAULT_PAIR), &m) == LW_OK, "%s", lw_last_error());
    return present(tl_model(base_name(m.sender.weights_path))) &&
           present(tl_model(base_name(m.receiver.weights_path)));
}

lw_model *tl_real_or_random_model(const char *file, bool *is_random)
{
    lw_model *model = NULL;
    const char *path = tl_model(file);
    if (is_random) *is_random = false;
    if (present(path)) {
        ck_assert_msg(lw_model_open(path, LW_WEIGHTS_GGUF, &model) == LW_OK, "%s", lw_last_error());
        return model;
    }
    lw_manifest m;
    ck_assert_msg(lw_manifest_load(tl_src(TL_DEFAULT_PAIR), &m) == LW_OK, "%s", lw_last_error());
    const lw_model_config *c = !strcmp(base_name(m.sender.weights_path), file)     ? &m.sender
                               : !strcmp(base_name(m.receiver.weights_path), file) ? &m.receiver
                                                                                    : NULL;
    ck_assert_msg(c != NULL, "%s is neither model of %s", file, TL_DEFAULT_PAIR);
    fprintf(stderr, "%s is not here: random weights of %s's shapes (%d layers, vocab %d)\n", path, c->name,
            c->n_layers, c->vocab);
    ck_assert_msg(lw_random_model(c, 1, &model) == LW_OK, "%s", lw_last_error());
    if (is_random) *is_random = true;
    return model;
}
