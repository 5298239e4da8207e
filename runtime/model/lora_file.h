/* A LoRA (lora.h) saved and loaded as safetensors under PEFT's names, with
 * PEFT's adapter_config as metadata. Apart from lora.h so that the forward
 * and backward, which only apply a LoRA, do not stand above the file
 * readers. */
#ifndef LW_LORA_FILE_H
#define LW_LORA_FILE_H

#include "lora.h"
#include "status.h"

/* PEFT-named safetensors with the adapter_config metadata (atomic). */
lw_status lw_lora_save(const lw_lora *lo, const char *path);
/* Loads A and B by name into lo (created with the same config); checks the
 * file's r, lora_alpha and target_modules metadata when present. */
lw_status lw_lora_load(lw_lora *lo, const char *path);
/* The adapter_config JSON (malloc'd). */
char *lw_lora_config_json(const lw_lora *lo);

#endif
