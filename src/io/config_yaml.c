/* io/config_yaml: the reader of a config: YAML text (libyaml's document API, so every node has a line and column
 * for the messages) and --set key=value assignments, each value parsed by the schema (config_schema.c); unknown
 * keys get the nearest known one as a suggestion. */
#include "io/config.h"
#include "io/config_schema.h"
#include "config_internal.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

typedef struct {
    sc_config *cfg;
    const char *file;      /* file name for messages, or NULL for --set */
    const char *set_text;  /* the --set argument */
    config_origin origin;
    yaml_document_t *doc;
} load_ctx;

static sc_err lerr(const load_ctx *x, const yaml_node_t *node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static sc_err lerr(const load_ctx *x, const yaml_node_t *node, const char *path, const char *fmt, ...) {
    char msg[CONFIG_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->file)
        return sc_errorf(SC_ERR_CONFIG, "%s:%d:%d: %s%s%s", x->file, (int)node->start_mark.line + 1,
                         (int)node->start_mark.column + 1, path ? path : "", path ? ": " : "", msg);
    return sc_errorf(SC_ERR_CONFIG, "--set %s: %s", x->set_text, msg);
}

static size_t lev(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), d[64 + 1];
    if (lb > 64) lb = 64;
    for (size_t j = 0; j <= lb; j++) d[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = d[0];
        d[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = d[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (d[j] + 1 < best) best = d[j] + 1;
            if (d[j - 1] + 1 < best) best = d[j - 1] + 1;
            d[j] = best;
            prev = cur;
        }
    }
    return d[lb];
}

static const char *leaf(const char *p) {
    const char *d = strrchr(p, '.');
    return d ? d + 1 : p;
}

/* The closest known key path (or section name) to an unknown one. */
static const char *suggest(const char *path, char *buf, size_t n) {
    size_t best = (size_t)-1;
    buf[0] = 0;
    for (int i = 0; i < config_schema_n; i++) {
        const char *k = config_schema[i].path;
        size_t d = lev(path, k);
        if (strcmp(leaf(path), leaf(k)) == 0 && d > 1) d = 1; /* right name, wrong section */
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)(strchr(k, '.') - k), k);
        size_t ds = lev(path, sec);
        if (d < best) { best = d; snprintf(buf, n, "%s", k); }
        if (ds < best) { best = ds; snprintf(buf, n, "%s", sec); }
    }
    size_t lim = strlen(path) / 3 + 2;
    return best <= lim ? buf : NULL;
}

static bool is_section(const char *path) {
    size_t l = strlen(path);
    for (int i = 0; i < config_schema_n; i++)
        if (strncmp(config_schema[i].path, path, l) == 0 && config_schema[i].path[l] == '.') return true;
    return false;
}

/* the first key of a section (for an example in messages) */
static int first_key_of(const char *section) {
    size_t l = strlen(section);
    for (int i = 0; i < config_schema_n; i++)
        if (strncmp(config_schema[i].path, section, l) == 0 && config_schema[i].path[l] == '.') return i;
    return 0;
}

static const char *node_kind(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

static sc_err apply_value(load_ctx *x, int ki, yaml_node_t *v) {
    const config_key *k = &config_schema[ki];
    char why[512];
    if (x->origin == CFG_ORIGIN_FILE && x->cfg->origin[ki] == CFG_ORIGIN_FILE)
        return lerr(x, v, k->path, "duplicate key (first set at line %d)", x->cfg->line[ki]);
    bool ok;
    if (v->type == YAML_SCALAR_NODE) {
        ok = config_parse_scalar(k, (const char *)v->data.scalar.value, x->cfg, why, sizeof why);
    } else if (v->type == YAML_SEQUENCE_NODE) {
        const char *items[CONFIG_MAX_LIST + 1];
        int n = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(x->doc, *it);
            if (!e || e->type != YAML_SCALAR_NODE)
                return lerr(x, e ? e : v, k->path, "list items must be numbers, got %s", e ? node_kind(e) : "?");
            if (n <= CONFIG_MAX_LIST) items[n] = (const char *)e->data.scalar.value;
            n++;
        }
        if (n > CONFIG_MAX_LIST) {
            char e[160];
            config_expected(k, e, sizeof e);
            return lerr(x, v, k->path, "expected %s, got %d values", e, n);
        }
        ok = config_parse_list(k, items, n, x->cfg, why, sizeof why);
    } else {
        char e[160];
        config_expected(k, e, sizeof e);
        return lerr(x, v, k->path, "expected %s, got a mapping", e);
    }
    if (!ok) return lerr(x, v, k->path, "%s", why);
    x->cfg->origin[ki] = (uint8_t)x->origin;
    x->cfg->line[ki] = (int)v->start_mark.line + 1;
    x->cfg->col[ki] = (int)v->start_mark.column + 1;
    return SC_OK;
}

static sc_err walk_mapping(load_ctx *x, yaml_node_t *map, const char *prefix) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (!kn || !vn) return lerr(x, map, prefix[0] ? prefix : NULL, "malformed mapping");
        if (kn->type != YAML_SCALAR_NODE) return lerr(x, kn, NULL, "keys must be names, got %s", node_kind(kn));
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", (const char *)kn->data.scalar.value);
        int ki = config_key_index(path);
        if (ki >= 0) {
            SC_TRY(apply_value(x, ki, vn));
        } else if (is_section(path)) {
            if (vn->type == YAML_SCALAR_NODE && vn->data.scalar.length == 0) continue; /* empty section */
            if (vn->type != YAML_MAPPING_NODE)
                return lerr(x, vn, path, "is a section: expected a mapping of its keys, got %s", node_kind(vn));
            SC_TRY(walk_mapping(x, vn, path));
        } else {
            char s[128];
            if (suggest(path, s, sizeof s)) return lerr(x, kn, NULL, "unknown key %s (did you mean %s?)", path, s);
            return lerr(x, kn, NULL, "unknown key %s (see docs/config.md)", path);
        }
    }
    return SC_OK;
}

/* the 1-based number of the first line whose indentation holds a tab, or 0 (libyaml's message never says so) */
static int first_tab_indent(const char *text, size_t len) {
    int line = 1;
    bool indent = true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') { line++; indent = true; continue; }
        if (!indent) continue;
        if (text[i] == '\t') return line;
        if (text[i] != ' ') indent = false;
    }
    return 0;
}

/* Parses `text` as one YAML document; file != NULL: a config file (root mapping); else the value of a --set. */
static sc_err load_yaml(load_ctx *x, const char *text, size_t len, int set_key) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return sc_errorf(SC_ERR_NOMEM, "libyaml: cannot initialise a parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    sc_err rc = SC_OK;
    if (!yaml_parser_load(&parser, &doc)) {
        const char *ctx = parser.context ? parser.context : NULL;
        int tab_line = x->file ? first_tab_indent(text, len) : 0;
        char tab[160] = "";
        if (tab_line > 0)
            snprintf(tab, sizeof tab, " (line %d is indented with a tab: YAML indents with spaces only)", tab_line);
        if (x->file)
            rc = sc_errorf(SC_ERR_CONFIG, "%s:%d:%d: malformed YAML: %s%s%s%s", x->file,
                           (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                           parser.problem ? parser.problem : "syntax error", ctx ? " " : "", ctx ? ctx : "", tab);
        else
            rc = sc_errorf(SC_ERR_CONFIG, "--set %s: malformed value: %s", x->set_text,
                           parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return rc;
    }
    x->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (set_key >= 0) {
        yaml_node_t empty = {0};
        empty.type = YAML_SCALAR_NODE;
        empty.data.scalar.value = (yaml_char_t *)"";
        rc = apply_value(x, set_key, root ? root : &empty);
    } else if (root) {
        if (root->type == YAML_MAPPING_NODE) rc = walk_mapping(x, root, "");
        else if (!(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
            rc = lerr(x, root, NULL, "expected a mapping of sections (model:, method:, ...), got %s", node_kind(root));
    }
    /* a second document ("---") is most likely a mistake: say so instead of ignoring it */
    if (rc == SC_OK && set_key < 0) {
        yaml_document_t doc2;
        if (yaml_parser_load(&parser, &doc2)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
            if (r2) rc = lerr(x, r2, NULL, "a config file holds one YAML document; found a second one");
            yaml_document_delete(&doc2);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

static sc_err apply_set(sc_config *cfg, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    /* "key = value" (a quoted --set with spaces) means key=value: blanks around the key and the value go */
    const char *k0 = assignment, *k1 = eq ? eq : assignment;
    while (k0 < k1 && (*k0 == ' ' || *k0 == '\t')) k0++;
    while (k1 > k0 && (k1[-1] == ' ' || k1[-1] == '\t')) k1--;
    if (!eq || k1 == k0)
        return sc_errorf(SC_ERR_CONFIG, "--set %s: expected key=value, e.g. --set optim.lr=0.1", assignment);
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)(k1 - k0), k0);
    int ki = config_key_index(path);
    if (ki < 0 && is_section(path))
        return sc_errorf(SC_ERR_CONFIG, "--set %s: %s is a section, not a key: set one of its keys, e.g. --set %s=...",
                         assignment, path, config_schema[first_key_of(path)].path);
    if (ki < 0) {
        char s[128];
        if (suggest(path, s, sizeof s))
            return sc_errorf(SC_ERR_CONFIG, "--set %s: unknown key %s (did you mean %s?)", assignment, path, s);
        return sc_errorf(SC_ERR_CONFIG, "--set %s: unknown key %s (see docs/config.md)", assignment, path);
    }
    load_ctx x = {.cfg = cfg, .file = NULL, .set_text = assignment, .origin = CFG_ORIGIN_SET};
    char vbuf[CONFIG_PATH_MAX + 64];
    const char *val = eq + 1;
    while (*val == ' ' || *val == '\t') val++;
    size_t vl = strlen(val);
    while (vl > 0 && (val[vl - 1] == ' ' || val[vl - 1] == '\t')) vl--;
    if (vl >= sizeof vbuf) return sc_errorf(SC_ERR_CONFIG, "--set %.60s...: value too long", assignment);
    memcpy(vbuf, val, vl);
    vbuf[vl] = 0;
    val = vbuf;
    /* strings are taken literally (a path may contain ': '), everything else goes through YAML like the file */
    if (config_schema[ki].type == CFG_T_STRING) {
        char why[256];
        if (!config_parse_scalar(&config_schema[ki], val, cfg, why, sizeof why))
            return sc_errorf(SC_ERR_CONFIG, "--set %s: %s", assignment, why);
        cfg->origin[ki] = CFG_ORIGIN_SET;
        cfg->line[ki] = cfg->col[ki] = 0;
        return SC_OK;
    }
    sc_err e = load_yaml(&x, val, strlen(val), ki);
    if (e == SC_OK) cfg->line[ki] = cfg->col[ki] = 0;
    return e;
}

static sc_err load_common(const char *text, size_t len, const char *name, const char *const *sets, int nsets,
                          sc_config *out) {
    sc_config *c = malloc(sizeof *c);
    if (!c) return sc_errorf(SC_ERR_NOMEM, "config: out of memory");
    memset(c, 0, sizeof *c);
    config_static_defaults(c);
    sc_err e = SC_OK;
    if (name) snprintf(c->source, sizeof c->source, "%s", name);
    if (text) {
        load_ctx x = {.cfg = c, .file = name, .origin = CFG_ORIGIN_FILE};
        e = load_yaml(&x, text, len, -1);
    }
    for (int i = 0; e == SC_OK && i < nsets; i++) e = apply_set(c, sets[i]);
    if (e == SC_OK) e = config_resolve(c);
    if (e == SC_OK) *out = *c;
    free(c);
    return e;
}

sc_err config_load_string(const char *text, const char *name, const char *const *sets, int nsets, sc_config *out) {
    return load_common(text, text ? strlen(text) : 0, name ? name : "(string)", sets, nsets, out);
}

sc_err config_load(const char *path, const char *const *sets, int nsets, sc_config *out) {
    if (!path) return load_common(NULL, 0, NULL, sets, nsets, out);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return sc_errorf(SC_ERR_IO, "%s: is a directory, expected a YAML config file (e.g. yaml/fmnist-slimclr-mocov2.yaml)",
                         path);
    FILE *f = fopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open the config file: %m", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int bad = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (bad) { free(buf); return sc_errorf(SC_ERR_IO, "%s: cannot read the config file: %s", path, strerror(bad)); }
    sc_err e = load_common(buf, len, path, sets, nsets, out);
    free(buf);
    return e;
}

sc_err config_set(sc_config *cfg, const char *assignment) {
    sc_config *c = malloc(sizeof *c);
    if (!c) return sc_errorf(SC_ERR_NOMEM, "config: out of memory");
    *c = *cfg;
    sc_err e = apply_set(c, assignment);
    if (e == SC_OK) e = config_resolve(c);
    if (e == SC_OK) *cfg = *c;
    free(c);
    return e;
}
