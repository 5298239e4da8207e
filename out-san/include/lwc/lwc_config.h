/* Written by configure; do not edit. */
#ifndef LWC_CONFIG_H
#define LWC_CONFIG_H
#define LWC_VERSION "0.1.0"
#define LWC_HAVE_BLAS 1
#define LWC_HAVE_NVRTC 1
#define LWC_HAVE_CUBLAS 1
#define LWC_HAVE_NCCL 1
#define LWC_HAVE_CUDA_H 1
#endif
