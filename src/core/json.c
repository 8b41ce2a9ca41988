#include "core/json.h"
#include <stdio.h>

size_t sc_json_quote(char *dst, size_t cap, const char *s) {
    size_t n = 0;
#define PUT(ch)                                                                                                    \
    do {                                                                                                           \
        if (n + 1 < cap) dst[n] = (char)(ch);                                                                      \
        n++;                                                                                                       \
    } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') { PUT('\\'); PUT(c); }
        else if (c == '\n') { PUT('\\'); PUT('n'); }
        else if (c == '\t') { PUT('\\'); PUT('t'); }
        else if (c < 0x20) {
            char u[8];
            snprintf(u, sizeof u, "\\u%04x", c);
            for (int i = 0; i < 6; i++) PUT(u[i]);
        } else PUT(c);
    }
    PUT('"');
#undef PUT
    if (cap) dst[n < cap ? n : cap - 1] = 0;
    return n;
}
