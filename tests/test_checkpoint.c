/* Unit tests of io/checkpoint and io/metrics: round trip; a flipped byte (header, data, padding), truncation,
 * wrong magic and another version each refused with the reason; model/config mismatch message; failing
 * writes (missing directory, RLIMIT_FSIZE) leave the previous checkpoint and `latest` intact; retention;
 * latest fallback; JSON lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "io/checkpoint.h"
#include "io/metrics.h"
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define NP 10000
static float params[NP];
static int64_t counters[3] = {7, -1, 1LL << 40};
static const char text[] = "model:\n  depth: 18\n";

static char tmpdir[256];

static int setup(void **st) {
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ckpt_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    for (int i = 0; i < NP; i++) params[i] = (float)sin(i * 0.37) * 3.0f;
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static ckpt_header hdr(uint64_t step) {
    ckpt_header h;
    memset(&h, 0, sizeof h);
    h.config_hash = 0x1234abcd5678ef00ull;
    h.step = step;
    h.epoch = step / 10.0;
    snprintf(h.signature, sizeof h.signature, "resnet18-small-b16-in1-w1,0.75,0.5,0.25-mocov2");
    return h;
}

static int sections(ckpt_section *s) {
    s[0] = (ckpt_section){"params", CKPT_F32, NP, params};
    s[1] = (ckpt_section){"counters", CKPT_I64, 3, counters};
    s[2] = (ckpt_section){"config", CKPT_U8, sizeof text - 1, text};
    s[3] = (ckpt_section){"empty", CKPT_F32, 0, NULL};
    return 4;
}

static void write_one(const char *path, uint64_t step) {
    ckpt_section s[4];
    int n = sections(s);
    ckpt_header h = hdr(step);
    if (ckpt_write(path, &h, s, n) != SC_OK) fail_msg("%s", sc_last_error());
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void expect_open_error(const char *path, sc_err code, const char *sub) {
    ckpt_file *f = NULL;
    sc_err e = ckpt_open(path, &f);
    if (e != code) fail_msg("expected %d, got %d (%s)", code, e, sc_last_error());
    assert_null(f);
    if (!strstr(sc_last_error(), sub)) fail_msg("message \"%s\" lacks \"%s\"", sc_last_error(), sub);
    if (!strstr(sc_last_error(), path)) fail_msg("message \"%s\" does not name the file", sc_last_error());
}

static void patch(const char *path, long off, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void flip(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void copy(const char *from, const char *to) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void test_round_trip(void **st) {
    (void)st;
    char p[512];
    snprintf(p, sizeof p, "%s/rt.ckpt", tmpdir);
    write_one(p, 42);
    ckpt_file *f;
    if (ckpt_open(p, &f) != SC_OK) fail_msg("%s", sc_last_error());
    const ckpt_header *h = ckpt_get_header(f);
    assert_true(h->step == 42 && h->epoch == 4.2 && h->config_hash == 0x1234abcd5678ef00ull);
    assert_string_equal(h->signature, "resnet18-small-b16-in1-w1,0.75,0.5,0.25-mocov2");
    assert_int_equal(ckpt_nsections(f), 4);
    assert_string_equal(ckpt_section_name(f, 1), "counters");
    ckpt_dtype t;
    size_t n;
    const float *pp = ckpt_find(f, "params", &t, &n);
    assert_non_null(pp);
    assert_true(t == CKPT_F32 && n == NP && ((uintptr_t)pp % 64) == 0);
    assert_memory_equal(pp, params, sizeof params);
    int64_t c[3];
    assert_int_equal(ckpt_read_section(f, "counters", CKPT_I64, 3, c), SC_OK);
    assert_memory_equal(c, counters, sizeof c);
    const char *txt = ckpt_find(f, "config", &t, &n);
    assert_true(t == CKPT_U8 && n == sizeof text - 1 && memcmp(txt, text, n) == 0);
    assert_non_null(ckpt_find(f, "empty", NULL, &n));
    assert_int_equal(n, 0);
    assert_null(ckpt_find(f, "queue", NULL, NULL));
    assert_int_equal(ckpt_read_section(f, "queue", CKPT_F32, 1, c), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "no section queue"));
    assert_int_equal(ckpt_read_section(f, "counters", CKPT_I32, 3, c), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "holds 3 i64, expected 3 i32"));
    /* model / config checks */
    assert_int_equal(ckpt_check(f, h->signature, h->config_hash, NULL), SC_OK);
    assert_int_equal(ckpt_check(f, "resnet50-imagenet-b64-in3-w1,0.5-mocov3", h->config_hash, NULL), SC_ERR_MISMATCH);
    assert_non_null(strstr(sc_last_error(), "was written for resnet18-small-b16-in1-w1,0.75,0.5,0.25-mocov2, this "
                                            "config is resnet50-imagenet-b64-in3-w1,0.5-mocov3"));
    assert_int_equal(ckpt_check(f, h->signature, 1, "optim.batch: 256 vs 512"), SC_ERR_MISMATCH);
    assert_non_null(strstr(sc_last_error(), "another configuration"));
    assert_non_null(strstr(sc_last_error(), "optim.batch: 256 vs 512"));
    ckpt_close(f);
    ckpt_header hh;
    assert_int_equal(ckpt_read_header(p, &hh), SC_OK);
    assert_true(hh.step == 42);
    /* no tmp file left behind */
    char tp[600];
    snprintf(tp, sizeof tp, "%s.tmp", p);
    assert_int_equal(access(tp, F_OK), -1);
    /* bad sections refused */
    ckpt_section dup[2] = {{"a", CKPT_F32, 1, params}, {"a", CKPT_F32, 1, params}};
    ckpt_header h2 = hdr(1);
    assert_int_equal(ckpt_write(p, &h2, dup, 2), SC_ERR_ARG);
}

static void test_corruption(void **st) {
    (void)st;
    char good[512], p[512];
    snprintf(good, sizeof good, "%s/good.ckpt", tmpdir);
    snprintf(p, sizeof p, "%s/bad.ckpt", tmpdir);
    write_one(good, 7);
    long size = file_size(good);
    /* layout: 256-byte header, 4 x 128-byte descriptors, params at offset 768 */
    copy(good, p);
    flip(p, 768 + 4 * 123);
    expect_open_error(p, SC_ERR_FORMAT, "section params: checksum mismatch");
    copy(good, p);
    flip(p, 40); /* the epoch field */
    expect_open_error(p, SC_ERR_FORMAT, "header checksum mismatch");
    copy(good, p);
    flip(p, 256 + 128 + 72); /* count of the second section */
    expect_open_error(p, SC_ERR_FORMAT, "descriptor 1 checksum mismatch");
    copy(good, p);
    flip(p, size - 20); /* padding before the trailer */
    expect_open_error(p, SC_ERR_FORMAT, "whole-file checksum mismatch");
    copy(good, p);
    flip(p, size - 8); /* the stored whole-file CRC */
    expect_open_error(p, SC_ERR_FORMAT, "whole-file checksum mismatch");
    copy(good, p);
    flip(p, size - 14); /* the end marker */
    expect_open_error(p, SC_ERR_FORMAT, "missing end marker");
    copy(good, p);
    assert_int_equal(truncate(p, size - 100), 0);
    expect_open_error(p, SC_ERR_FORMAT, "truncated");
    ckpt_header h;
    assert_int_equal(ckpt_read_header(p, &h), SC_ERR_FORMAT); /* the cheap check sees it too */
    assert_int_equal(truncate(p, 100), 0);
    expect_open_error(p, SC_ERR_FORMAT, "truncated: 100 bytes");
    assert_int_equal(truncate(p, 0), 0);
    expect_open_error(p, SC_ERR_FORMAT, "bad magic");
    copy(good, p);
    patch(p, 0, "PYTORCH!", 8);
    expect_open_error(p, SC_ERR_FORMAT, "not a slimclr checkpoint (bad magic");
    /* another version with a consistent header CRC: refused for the version, not the checksum */
    copy(good, p);
    uint32_t v = 2;
    patch(p, 8, &v, 4);
    unsigned char head[252];
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(head, 1, 252, f), 252);
    fclose(f);
    uint32_t crc = (uint32_t)crc32(0, head, 252);
    patch(p, 252, &crc, 4);
    expect_open_error(p, SC_ERR_FORMAT, "format version 2, this program reads version 1");
    copy(good, p);
    assert_int_equal(truncate(p, size + 5), 0);
    expect_open_error(p, SC_ERR_FORMAT, "trailing data");
    expect_open_error("/nonexistent/x.ckpt", SC_ERR_IO, "cannot open");
}

static void test_failed_writes(void **st) {
    (void)st;
    ckpt_section s[4];
    int n = sections(s);
    ckpt_header h = hdr(1);
    /* a path in a directory that does not exist */
    char p[512];
    snprintf(p, sizeof p, "%s/missing/x.ckpt", tmpdir);
    assert_int_equal(ckpt_write(p, &h, s, n), SC_ERR_IO);
    assert_non_null(strstr(sc_last_error(), p));
    assert_int_equal(access(p, F_OK), -1);

    char dir[512];
    snprintf(dir, sizeof dir, "%s/run/checkpoints", tmpdir);
    assert_int_equal(ckpt_save(dir, &h, s, n, 2, 0), SC_OK);
    char first[600], latest[600];
    ckpt_step_path(dir, 1, first, sizeof first);
    long size1 = file_size(first);
    /* a file size limit below the next checkpoint: write fails with EFBIG (SIGXFSZ ignored) */
    static float big[200000];
    ckpt_section sb[1] = {{"params", CKPT_F32, 200000, big}};
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ckpt_header h2 = hdr(2);
    sc_err e = ckpt_save(dir, &h2, sb, 1, 2, 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(e, SC_ERR_IO);
    assert_non_null(strstr(sc_last_error(), "write failed"));
    assert_non_null(strstr(sc_last_error(), "step-2.ckpt"));
    /* previous checkpoint and latest untouched, no partial file under either name */
    char second[600], tmp[700];
    ckpt_step_path(dir, 2, second, sizeof second);
    snprintf(tmp, sizeof tmp, "%s.tmp", second);
    assert_int_equal(access(second, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(file_size(first), size1);
    bool found;
    assert_int_equal(ckpt_find_latest(dir, latest, sizeof latest, &found), SC_OK);
    assert_true(found);
    assert_string_equal(latest, first);
    ckpt_file *f;
    assert_int_equal(ckpt_open(first, &f), SC_OK);
    assert_true(ckpt_get_header(f)->step == 1);
    ckpt_close(f);
}

static void test_retention(void **st) {
    (void)st;
    ckpt_entry e[10];
    bool keep[10];
    for (int i = 0; i < 10; i++) e[i] = (ckpt_entry){(uint64_t)(i + 1), (i + 1) * 0.5};
    ckpt_retention(e, 10, 2, 2, keep);
    /* steps 9, 10 (last two), 4 (first at epoch >= 2), 8 (first at epoch >= 4) */
    for (int i = 0; i < 10; i++) {
        bool want = e[i].step == 4 || e[i].step == 8 || e[i].step >= 9;
        if (keep[i] != want) fail_msg("step %d: keep %d, expected %d", (int)e[i].step, keep[i], want);
    }
    ckpt_retention(e, 10, 3, 0, keep);
    for (int i = 0; i < 10; i++) assert_true(keep[i] == (e[i].step >= 8));
    /* sparse checkpoints: 2.5 is the snapshot of epochs 2, 4.1 of 4; 4.5 is neither */
    ckpt_entry s[5] = {{1, 0.9}, {2, 2.5}, {3, 4.1}, {4, 4.5}, {5, 5.5}};
    bool k5[5];
    ckpt_retention(s, 5, 1, 2, k5);
    assert_true(!k5[0] && k5[1] && k5[2] && !k5[3] && k5[4]);
    /* stable: the same choice after the older non-snapshots are gone and newer ones arrive */
    ckpt_entry s2[4] = {{2, 2.5}, {3, 4.1}, {5, 5.5}, {6, 6.2}};
    bool k4[4];
    ckpt_retention(s2, 4, 1, 2, k4);
    assert_true(k4[0] && k4[1] && !k4[2] && k4[3]);

    /* on disk: 5 saves, keep 2 -> two files + latest */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ret", tmpdir);
    ckpt_section sec[4];
    int n = sections(sec);
    for (uint64_t step = 10; step <= 50; step += 10) {
        ckpt_header h = hdr(step);
        assert_int_equal(ckpt_save(dir, &h, sec, n, 2, 0), SC_OK);
    }
    DIR *d = opendir(dir);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 3);
    char p[600], want[600];
    bool found;
    assert_int_equal(ckpt_find_latest(dir, p, sizeof p, &found), SC_OK);
    ckpt_step_path(dir, 50, want, sizeof want);
    assert_true(found);
    assert_string_equal(p, want);
    /* latest names a broken file: fall back to the newest valid one */
    assert_int_equal(truncate(want, 10), 0);
    assert_int_equal(ckpt_find_latest(dir, p, sizeof p, &found), SC_OK);
    ckpt_step_path(dir, 40, want, sizeof want);
    assert_true(found);
    assert_string_equal(p, want);
    /* nothing to resume */
    snprintf(dir, sizeof dir, "%s/none", tmpdir);
    assert_int_equal(ckpt_find_latest(dir, p, sizeof p, &found), SC_OK);
    assert_false(found);
}

/* `latest`, the checkpoints/ directory and the run directory all open the newest complete checkpoint */
static void test_open_by_pointer(void **st) {
    (void)st;
    char run[512], dir[600], p[700];
    snprintf(run, sizeof run, "%s/ptr-run", tmpdir);
    snprintf(dir, sizeof dir, "%s/checkpoints", run);
    ckpt_section sec[4];
    int n = sections(sec);
    for (uint64_t step = 3; step <= 6; step += 3) {
        ckpt_header h = hdr(step);
        assert_int_equal(ckpt_save(dir, &h, sec, n, 2, 0), SC_OK);
    }
    const char *forms[3] = {"%s/checkpoints/latest", "%s/checkpoints", "%s"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, forms[i], run);
        ckpt_file *f = NULL;
        assert_int_equal(ckpt_open(p, &f), SC_OK);
        assert_int_equal(ckpt_get_header(f)->step, 6);
        assert_non_null(strstr(ckpt_path(f), "step-6.ckpt"));
        ckpt_close(f);
    }
    /* an empty checkpoints/ directory: a clear error, not "bad magic" */
    snprintf(p, sizeof p, "%s/ptr-empty/checkpoints", tmpdir);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", p);
    assert_int_equal(system(cmd), 0);
    ckpt_file *f = NULL;
    assert_int_not_equal(ckpt_open(p, &f), SC_OK);
    assert_non_null(strstr(sc_last_error(), "no complete checkpoint"));
}

static void test_metrics(void **st) {
    (void)st;
    char p[512];
    snprintf(p, sizeof p, "%s/metrics.jsonl", tmpdir);
    metrics *m;
    assert_int_equal(metrics_open(p, &m), SC_OK);
    assert_int_equal(metrics_write(m, {"step", 10}, {"loss_w1.0", 8.1}, {"lr", 0.06}), SC_OK);
    metrics_begin(m);
    metrics_str(m, "phase", "probe \"a\"\n");
    metrics_int(m, "step", 1LL << 40);
    metrics_num(m, "bad", NAN);
    metrics_num(m, "neg", -2.5e-7);
    assert_int_equal(metrics_end(m), SC_OK);
    metrics_close(m);
    assert_int_equal(metrics_open(p, &m), SC_OK); /* appends, as a resumed run does */
    assert_int_equal(metrics_write(m, {"step", 20}), SC_OK);
    metrics_close(m);
    FILE *f = fopen(p, "r");
    char line[3][256];
    for (int i = 0; i < 3; i++) assert_non_null(fgets(line[i], sizeof line[i], f));
    fclose(f);
    assert_string_equal(line[0], "{\"step\":10,\"loss_w1.0\":8.1,\"lr\":0.06}\n");
    assert_string_equal(line[1], "{\"phase\":\"probe \\\"a\\\"\\n\",\"step\":1099511627776,\"bad\":null,\"neg\":-2.5e-07}\n");
    assert_string_equal(line[2], "{\"step\":20}\n");
    assert_int_equal(metrics_open("/nonexistent/m.jsonl", &m), SC_ERR_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_corruption), cmocka_unit_test(test_failed_writes),
        cmocka_unit_test(test_retention),  cmocka_unit_test(test_metrics), cmocka_unit_test(test_open_by_pointer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
