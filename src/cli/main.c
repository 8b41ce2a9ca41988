/* slimclr: the program. Dispatches subcommands; every rank runs the same subcommand. */
#include "blas/blas.h"
#include "cli/cli.h"
#include "comm/comm.h"
#include "core/error.h"
#include <stdio.h>
#include <string.h>

#ifndef SLIMCLR_VERSION
#define SLIMCLR_VERSION "0.1.0"
#endif
#ifndef SLIMCLR_COMMIT
#define SLIMCLR_COMMIT "unknown"
#endif

static const char *usage_text =
    "usage: slimclr COMMAND [ARGS] [--set key=value ...]\n"
    "\n"
    "Pre-trains slimmable ResNets (widths 1.0/0.75/0.5/0.25 sharing one weight) with SlimCLR (MoCo v2, MoCo v3,\n"
    "SimCLR) data-parallel over MPI. Launch with `mpirun -np P slimclr ...`; every rank runs the same command.\n"
    "\n"
    "commands:\n"
    "  train CONFIG.yaml [--resume [PATH]]\n"
    "      Pre-train. The run directory (run.dir, default runs/<config name>) receives config.yaml,\n"
    "      metrics.jsonl, checkpoints/ (step-N.ckpt + latest) and traces. An existing run is never\n"
    "      overwritten: pass --resume to continue it. --resume without PATH takes the run's latest complete\n"
    "      checkpoint and starts fresh when there is none (so job files can always pass it).\n"
    "      SIGUSR1/SIGTERM: every rank checkpoints at the same step boundary and exits 0.\n"
    "  info CONFIG.yaml [--ranks P]\n"
    "      The resolved configuration, per-width parameters and forward MACs, the per-step FLOPs, the memory\n"
    "      per rank and the run plan; refuses a batch / rank count / queue combination that cannot run.\n"
    "  eval CONFIG.yaml --checkpoint PATH\n"
    "      Linear evaluation per width (switchable probe + ScaLAPACK ridge probe): table printed and written\n"
    "      as CSV and Markdown under <run.dir>/eval/.\n"
    "  export --checkpoint PATH --width W --out PATH [--format slimclr|safetensors]\n"
    "  import --from FILE.safetensors --config CONFIG.yaml --out PATH\n"
    "  features CONFIG.yaml --checkpoint PATH --width W --split train|test --out FILE.npy\n"
    "  pack SRC_DIR --size S --out PATH\n"
    "      Pack a folder of class sub-folders of JPEGs into one shard (shorter side resized to S, centre crop).\n"
    "  bench CONFIG.yaml\n"
    "      Benchmark B1 (one SlimCLR step): ms/step, images/s, GFLOP/s against the BLIS sgemm rate.\n"
    "\n"
    "options for every command taking a config: --set key=value (repeatable, validated like the file).\n"
    "  slimclr --version     version, commit, MPI, BLIS and ScaLAPACK in use\n"
    "  slimclr --help        this text; the configuration keys are documented in docs/config.md\n"
    "exit codes: 0 ok, 1 runtime error, 2 bad usage / configuration / input, 3 non-finite loss.\n";

static void print_version(void) {
    printf("slimclr %s (commit %s)\n", SLIMCLR_VERSION, SLIMCLR_COMMIT);
    printf("MPI: %s\n", comm_library_version());
    blas_set_threads(1);
    printf("BLAS: %s\n", blas_info());
    printf("ScaLAPACK: Debian libscalapack-openmpi (linked: %s)\n", SLIMCLR_SCALAPACK);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"train", cli_train}, {"info", cli_info},       {"eval", cli_eval},   {"export", cli_export},
        {"import", cli_import}, {"features", cli_features}, {"pack", cli_pack}, {"bench", cli_bench},
    };
    int (*fn)(int, char **) = NULL;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) fn = cmds[i].fn;
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        comm_init(&argc, &argv);
        if (comm_rank() == 0) print_version();
        comm_finalize();
        return 0;
    }
    if (!fn) {
        fprintf(stderr, "slimclr: unknown command '%s' (try slimclr --help)\n", cmd);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    comm_init(&argc, &argv);
    int rc = fn(argc - 1, argv + 1);
    /* a rank-local failure code must not leave the others in MPI_Finalize's barrier forever: codes agree */
    int any = comm_allreduce_max_int(rc);
    comm_finalize();
    return rc ? rc : (any ? 1 : 0);
}
