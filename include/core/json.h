/* core/json: the one JSON string writer (trace files, metrics.jsonl, safetensors headers). */
#ifndef SC_CORE_JSON_H
#define SC_CORE_JSON_H
#include <stddef.h>

/* Writes s as a quoted JSON string ("...", with \" \\ \n \t and \u00XX for other control bytes; other bytes,
 * UTF-8 included, as they are) into dst, snprintf-style: at most cap bytes including the terminating NUL, and
 * returns the length the whole quoted string needs (excluding the NUL). dst may be NULL when cap is 0. */
size_t sc_json_quote(char *dst, size_t cap, const char *s);
#endif
