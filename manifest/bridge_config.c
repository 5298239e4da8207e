/* The bridge config's range check (bridge_config.h lw_bridge_config_check): one
 * place for the bounds the bridge, its plan and the memory plan rely on. */
#include "bridge_config.h"

lw_status lw_bridge_config_check(const lw_bridge_config *c, int S, int R)
{
    if (S < 1 || R < 1 || S > (1 << 20) || R > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "bridge: sender_hidden %d and receiver_hidden %d must be 1..2^20", S, R);
    if (c->soft_tokens < 1 || c->soft_tokens > 64)
        return lw_fail(LW_ERR_INVALID, "bridge.soft_tokens is %d, expected 1..64", c->soft_tokens);
    if (c->width < 1 || c->width > (1 << 16))
        return lw_fail(LW_ERR_INVALID, "bridge.width is %d, expected 1..65536", c->width);
    if (c->kind == LW_BRIDGE_PERCEIVER) {
        if (c->depth < 1 || c->depth > 64)
            return lw_fail(LW_ERR_INVALID, "bridge.depth is %d, expected 1..64", c->depth);
        if (c->heads < 1 || c->width % c->heads != 0)
            return lw_fail(LW_ERR_INVALID, "bridge.heads is %d, expected a divisor of width %d", c->heads,
                           c->width);
        if (c->ffn_mult < 1 || c->ffn_mult > 16)
            return lw_fail(LW_ERR_INVALID, "bridge.ffn_mult is %d, expected 1..16", c->ffn_mult);
    }
    return LW_OK;
}
