/* cli/: the subcommands of the slimclr program. Each returns the process exit code (0 ok, 2 usage/config,
 * 1 other errors) and has printed its message. All are COLLECTIVE (run on every rank under mpirun). */
#ifndef SC_CLI_H
#define SC_CLI_H

/* Parsed common options: CONFIG.yaml then repeated --set key=value and named flags. */
#define CLI_MAX_SETS 64
typedef struct {
    const char *config;
    const char *sets[CLI_MAX_SETS];
    int nsets;
} cli_common;

int cli_info(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_pack(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_features(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_graddir(int argc, char **argv);

/* Takes "--set k=v" (or "--set=k=v") at argv[*i]; returns 1 when consumed, 0 when not a --set, -1 on error. */
int cli_take_set(cli_common *c, int argc, char **argv, int *i);
void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
