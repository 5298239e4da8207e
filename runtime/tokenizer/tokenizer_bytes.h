/* The byte tokenizer: the stand-in for a model's tokenizer under random
 * weights (random_weights.h), when the tokenizer file is not on the machine.
 * It knows nothing of models; lw_config_load_tokenizer picks it. */
#ifndef LW_TOKENIZER_BYTES_H
#define LW_TOKENIZER_BYTES_H

#include "status.h"
#include "tokenizer.h"

enum { LW_BYTE_TOKEN_OFFSET = 3, LW_BYTE_TOKENIZER_VOCAB = 256 + LW_BYTE_TOKEN_OFFSET };

/* encode maps each byte b to b + LW_BYTE_TOKEN_OFFSET (no special tokens,
 * add_special ignored); decode maps an id back to its byte when that is
 * printable ASCII or '\n', else to '?', one character per id whatever the
 * id, so a relay's text is as long as its tokens. Prints the random-weights
 * warning (lw_random_weights_warn). */
lw_status lw_byte_tokenizer_load(lw_tokenizer **out);

/* "outputs are meaningless" on stderr, once per process, whichever of the
 * random model and the byte tokenizer comes first. Here, at the bottom,
 * so that both can reach it. */
void lw_random_weights_warn(void);

#endif
