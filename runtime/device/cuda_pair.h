/* The kernels a pair's binary embeds (pair.h's lw_kernel_image table), on
 * the device: which image of a unit runs on this GPU, loading it, and the
 * `lw info --device cuda` report. Kept apart from cuda_driver.h, which is
 * the driver alone and knows nothing of pairs, so the device layer stands
 * below the pair and only what loads a pair's kernels stands on both. */
#ifndef LW_CUDA_PAIR_H
#define LW_CUDA_PAIR_H

#include <stdio.h>

#include "cuda_driver.h"
#include "pair.h"
#include "status.h"

/* Picks the image of `unit` for a device of sm_<device_arch>: the exact arch
 * if embedded, else the highest arch below it (a CUBIN runs on later minor
 * versions of its major only, so a lower major is refused); NULL if none
 * fits. Pure: no driver needed. */
const lw_kernel_image *lw_cuda_select_image(const lw_kernel_image *images, int n_images, const char *unit,
                                            int device_arch);

/* Loads the image of `unit` that lw_cuda_select_image picks for this device. */
lw_status lw_cuda_load_unit(lw_cuda *cu, const lw_pair *p, const char *unit, lw_cuda_module *out);

/* For `lw info --device cuda`: the driver, the device, its free memory,
 * which embedded image each unit would run and whether each loads; or why
 * there is no usable GPU. Never fails. */
void lw_cuda_print_info(const lw_pair *p, FILE *out);

#endif
