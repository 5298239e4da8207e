/* Each template, for a single user turn, is: a head (BOS, system part, user
 * header), the user text (trimmed or not), and a tail (end of turn and the
 * assistant header). The strings below are what the Jinja templates write;
 * tests/check_chat_template.c holds them to transformers' rendering. */
#include "chat_template.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"
#include "unicode.h"

#define SMOLLM2_DEFAULT_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#define LLAMA31_DATES "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

/* Python's str.isspace() for one code point (what Jinja's trim strips). */
static bool py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Bytes of leading white space in s. */
static size_t lead_space(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t adv;
        if (!py_space(lw_utf8_decode((const unsigned char *)s + i, n - i, &adv)))
            break;
        i += adv;
    }
    return i;
}

/* Length of s without its trailing white space. */
static size_t without_trail_space(const char *s, size_t n)
{
    while (n > 0) {
        size_t start = n - 1;
        while (start > 0 && n - start < 4 && ((unsigned char)s[start] & 0xC0) == 0x80)
            start--;
        size_t adv;
        uint32_t c = lw_utf8_decode((const unsigned char *)s + start, n - start, &adv);
        if (start + adv != n || !py_space(c))
            break;  /* not white space, or the last bytes are not one whole character */
        n = start;
    }
    return n;
}

typedef struct {
    lw_strbuf head, tail;
    bool trim;  /* the template writes message['content'] | trim */
} turn;

static lw_status build_turn(lw_chat_template kind, const char *system, turn *t)
{
    memset(t, 0, sizeof *t);
    lw_strbuf *h = &t->head;
    switch (kind) {
    case LW_CHAT_NONE:
        if (system)
            return lw_fail(LW_ERR_INVALID, "chat template none: a system prompt needs a chat template");
        break;
    case LW_CHAT_CHATML:
        lw_sb_printf(h, "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n", system ? system : SMOLLM2_DEFAULT_SYSTEM);
        lw_sb_printf(&t->tail, "<|im_end|>\n<|im_start|>assistant\n");
        break;
    case LW_CHAT_GEMMA:
        lw_sb_printf(h, "<bos><start_of_turn>user\n");
        if (system)
            lw_sb_printf(h, "%s\n\n", system);
        lw_sb_printf(&t->tail, "<end_of_turn>\n<start_of_turn>model\n");
        t->trim = true;
        break;
    case LW_CHAT_LLAMA3: {
        size_t skip = system ? lead_space(system, strlen(system)) : 0;
        size_t keep = system ? without_trail_space(system + skip, strlen(system) - skip) : 0;
        lw_sb_printf(h, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" LLAMA31_DATES);
        lw_sb_append(h, system ? system + skip : "", keep);
        lw_sb_printf(h, "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n");
        lw_sb_printf(&t->tail, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        t->trim = true;
        break;
    }
    case LW_CHAT_MISTRAL:
        lw_sb_printf(h, "<s>[INST] ");
        if (system)
            lw_sb_printf(h, "%s\n\n", system);
        lw_sb_printf(&t->tail, "[/INST]");
        break;
    default:
        return lw_fail(LW_ERR_INVALID, "chat template %d is not one of lw_chat_template", (int)kind);
    }
    lw_sb_append(h, "", 0);
    lw_sb_append(&t->tail, "", 0);
    return LW_OK;
}

static void free_turn(turn *t)
{
    lw_sb_free(&t->head);
    lw_sb_free(&t->tail);
}

static lw_status take(lw_strbuf *sb, char **out)
{
    if (sb->failed || !sb->data) {
        lw_sb_free(sb);
        return lw_fail(LW_ERR_NOMEM, "chat template: out of memory");
    }
    *out = sb->data;
    memset(sb, 0, sizeof *sb);
    return LW_OK;
}

lw_status lw_chat_render_split(lw_chat_template kind, const char *system, const char *user_before,
                               const char *user_after, char **before, char **after)
{
    if (!user_before || !user_after)
        return lw_fail(LW_ERR_INVALID, "chat template: the user text is NULL");
    turn t;
    lw_status st = build_turn(kind, system, &t);
    if (st != LW_OK) {
        free_turn(&t);
        return st;
    }
    size_t nb = strlen(user_before), na = strlen(user_after);
    size_t skip = t.trim ? lead_space(user_before, nb) : 0;
    size_t keep = t.trim ? without_trail_space(user_after, na) : na;
    lw_sb_append(&t.head, user_before + skip, nb - skip);
    lw_strbuf tail = {0};
    lw_sb_append(&tail, user_after, keep);
    lw_sb_append(&tail, t.tail.data, t.tail.len);
    if ((st = take(&t.head, before)) == LW_OK && (st = take(&tail, after)) != LW_OK) {
        free(*before);
        *before = NULL;
    }
    lw_sb_free(&tail);
    free_turn(&t);
    return st;
}

lw_status lw_chat_render(lw_chat_template kind, const char *system, const char *user, char **out)
{
    if (!user)
        return lw_fail(LW_ERR_INVALID, "chat template: the user text is NULL");
    size_t n = strlen(user), skip = 0;
    turn t;
    lw_status st = build_turn(kind, system, &t);
    if (st == LW_OK && t.trim) {
        skip = lead_space(user, n);
        n = skip + without_trail_space(user + skip, n - skip);
    }
    if (st == LW_OK) {
        lw_sb_append(&t.head, user + skip, n - skip);
        lw_sb_append(&t.head, t.tail.data, t.tail.len);
        st = take(&t.head, out);
    }
    free_turn(&t);
    return st;
}
