/* A pair's embedded kernels on the device (cuda_pair.h). Only the driver's
 * public calls: the same code with or without the CUDA headers (without
 * them lw_cuda_check_open and lw_cuda_init say why there is no CUDA). */
#include "cuda_pair.h"

#include <string.h>

/* Pure, so it is built (and tested) with or without the CUDA headers. */
const lw_kernel_image *lw_cuda_select_image(const lw_kernel_image *images, int n_images, const char *unit,
                                            int device_arch)
{
    const lw_kernel_image *best = NULL;
    if (!images || !unit) return NULL;
    for (int i = 0; i < n_images; i++) {
        const lw_kernel_image *k = &images[i];
        if (!k->unit || strcmp(k->unit, unit) != 0 || !k->cubin || k->size == 0) continue;
        /* SASS runs on the same major at an equal or later minor, never across majors. */
        if (k->arch > device_arch || k->arch / 10 != device_arch / 10) continue;
        if (!best || k->arch > best->arch) best = k;
    }
    return best;
}

static void print_images(const lw_pair *p, FILE *out)
{
    if (p->n_kernels == 0) {
        fprintf(out, "kernels: none embedded (built without NVRTC): CPU only\n");
        return;
    }
    fprintf(out, "kernels: %d CUBINs embedded (NVRTC %s):", p->n_kernels, p->nvrtc_version);
    for (int i = 0; i < p->n_kernels; i++) fprintf(out, " %s/sm_%d", p->kernels[i].unit, p->kernels[i].arch);
    fprintf(out, "\n");
}

lw_status lw_cuda_load_unit(lw_cuda *cu, const lw_pair *p, const char *unit, lw_cuda_module *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = lw_cuda_check_open(cu, unit);
    if (st) return st;
    int arch = lw_cuda_arch(cu);
    const lw_kernel_image *k = lw_cuda_select_image(p->kernels, p->n_kernels, unit, arch);
    if (!k)
        return lw_fail(LW_ERR_UNSUPPORTED, "no embedded %s kernels run on %s (sm_%d); add \"sm_%d\" to "
                       "build.gpu_archs in %s and rebuild", unit, cu->name, arch, arch, p->manifest.path);
    return lw_cuda_load_image(cu, k->unit, k->arch, k->cubin, out);
}

void lw_cuda_print_info(const lw_pair *p, FILE *out)
{
    print_images(p, out);
    lw_cuda cu;
    if (lw_cuda_init(&cu, 0)) {
        fprintf(out, "cuda: unavailable: %s\n", lw_last_error());
        return;
    }
    size_t free_b = 0, total_b = 0;
    int arch = lw_cuda_arch(&cu);
    fprintf(out, "cuda: device 0 %s, sm_%d, driver %d.%d\n", cu.name, arch, cu.driver_version / 1000,
            cu.driver_version % 1000 / 10);
    if (lw_cuda_mem_info(&cu, &free_b, &total_b) == LW_OK)
        fprintf(out, "  memory: %.2f GiB free of %.2f GiB\n", free_b / 1073741824.0, total_b / 1073741824.0);
    static const char *const units[] = {"sender", "receiver", "bridge"};
    for (int i = 0; i < 3; i++) {
        lw_cuda_module m;
        if (lw_cuda_load_unit(&cu, p, units[i], &m) == LW_OK) {
            fprintf(out, "  %-8s sm_%d image loads\n", units[i], m.arch);
            lw_cuda_unload(&cu, &m);
        } else {
            fprintf(out, "  %-8s %s\n", units[i], lw_last_error());
        }
    }
    lw_cuda_close(&cu);
}
