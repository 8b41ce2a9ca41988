/* io/config_schema: the table behind io/config (one row per key: path, type, field, default, range or
 * choices, whether resume must match it, a one-line doc). Internal to io/, exposed for tools and tests. */
#ifndef SC_IO_CONFIG_SCHEMA_H
#define SC_IO_CONFIG_SCHEMA_H
#include "io/config.h"
#include <stddef.h>

typedef enum {
    CFG_T_BOOL, CFG_T_INT, CFG_T_I64, CFG_T_FLOAT, CFG_T_STRING, CFG_T_ENUM, CFG_T_LIST, CFG_T_THREADS,
} config_type;

typedef struct {
    const char *path;     /* "section.key" */
    config_type type;
    size_t off, size;     /* field in sc_config */
    const char *def;      /* static default as YAML text; NULL = recipe default computed by config_resolve */
    const char *def_doc;  /* how a recipe default is derived (docs); NULL when def says it all */
    double lo, hi;        /* inclusive range (per element for lists) */
    bool lo_open;         /* range is (lo, hi] */
    int minn, maxn;       /* list length bounds */
    const char *choices;  /* "a|b|c": enum names (value = index), or the allowed integers of a CFG_T_INT */
    bool hashed;          /* must match on resume (config_hash) */
    const char *doc;
} config_key;

extern const config_key config_schema[];
extern const int config_schema_n;

/* Parses one scalar (or, for lists, the items) into the field of cfg. On failure writes what was expected
 * ("expected an integer in [1, 4096], got \"x\"") into why and returns false. */
bool config_parse_scalar(const config_key *k, const char *text, sc_config *cfg, char *why, size_t n);
bool config_parse_list(const config_key *k, const char *const *items, int nitems, sc_config *cfg, char *why,
                       size_t n);
/* The value as YAML text (loadable back; floats round-trip exactly). */
void config_format_value(const config_key *k, const sc_config *cfg, char *buf, size_t n);
/* "an integer in [1, 4096]" etc. */
void config_expected(const config_key *k, char *buf, size_t n);
#endif
