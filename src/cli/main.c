/* slimclr: the program. Dispatches subcommands; every rank runs the same subcommand. */
#include "blas/blas.h"
#include "cli/cli.h"
#include "comm/comm.h"
#include "core/cpu.h"
#include "core/error.h"
#include "nn/conv.h"
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SLIMCLR_VERSION
#define SLIMCLR_VERSION "0.1.0"
#endif
#ifndef SLIMCLR_COMMIT
#define SLIMCLR_COMMIT "unknown"
#endif

/* one entry per command: its synopsis and description, for `slimclr --help` and `slimclr CMD --help` */
typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *synopsis, *text;
} cli_cmd;

static const cli_cmd cmds[] = {
    {"train", cli_train, "train CONFIG.yaml [--resume [PATH]]",
     "Pre-train. The run directory (run.dir, default runs/<config name>) receives config.yaml, metrics.jsonl,\n"
     "checkpoints/ (step-N.ckpt + latest), trace-rank<R>.json (run.trace) and eval/. An existing run is never\n"
     "overwritten: pass --resume to continue it. --resume without PATH takes the run's latest complete checkpoint\n"
     "and starts fresh when there is none (so job files always pass it). On resume the rank count, threads,\n"
     "logging, checkpoint cadence and run.dir may change; the model, method, data, batch and schedule may not\n"
     "(refused, naming the key). SIGUSR1/SIGTERM: every rank checkpoints at the same step boundary, writes\n"
     "<run.dir>/STOPPED_BY_SIGNAL (the step) and exits 0; a job file requeues on that file.\n"
     "Checkpoints: every checkpoint.every_steps steps and checkpoint.every_minutes minutes, keeping the last\n"
     "checkpoint.keep_last plus one per checkpoint.snapshot_epochs epochs.\n"
     "Threads per rank: run.threads (auto = SLURM_CPUS_PER_TASK, OMP_NUM_THREADS, BLIS_NUM_THREADS, else the\n"
     "cores of the rank's affinity mask); the binding of every rank is printed at start-up, with a warning\n"
     "when ranks run more threads than their cores, and in a SLURM allocation when the ranks, ranks per node or\n"
     "threads differ from what SLURM granted (SLURM_NTASKS, SLURM_NTASKS_PER_NODE, SLURM_CPUS_PER_TASK).\n"
     "--resume PATH: a checkpoint file, `latest`, checkpoints/ or a run directory (its newest complete\n"
     "checkpoint). A damaged newest checkpoint is skipped with a warning naming it and the one taken instead;\n"
     "a damaged checkpoint given by name is refused, naming the previous good one. A start that fails before\n"
     "its first step leaves no run directory behind. Memory: before anything is created, the estimate per rank\n"
     "(slimclr info) is compared with what a rank may use (the cgroup limit, SLURM_MEM_PER_NODE or\n"
     "SLURM_MEM_PER_CPU, MemAvailable, shared by the ranks of a node): a run that does not fit is refused with\n"
     "both numbers (exit 2). Experts: SLIMCLR_MEM_PER_RANK=SIZE (e.g. 64G) sets what a rank may use,\n"
     "SLIMCLR_MEM_CHECK=off skips the check."},
    {"info", cli_info, "info CONFIG.yaml [--ranks P]",
     "The resolved configuration, per-width parameters and forward MACs, the per-step FLOPs, the estimated\n"
     "memory per rank (parameters, optimizer state, activations per width, queue, buffers) and the run plan,\n"
     "for P ranks (default: the ranks it runs on). Refuses (exit 2) a batch that P x optim.accum does not\n"
     "divide and a MoCo v2 queue that is not a multiple of the batch, before any work."},
    {"eval", cli_eval, "eval [CONFIG.yaml] --checkpoint PATH | --random-init [--classifier] [--max-train N] "
     "[--max-test N] [--tag NAME]",
     "Linear evaluation per width: frozen eval-mode features, the switchable SGD probe\n"
     "(eval.probe: slim = one shared slimmable layer) and the ScaLAPACK ridge probe; the table is printed and\n"
     "written as CSV and Markdown under <run.dir>/eval/ (probe[-TAG].csv|md). eval.protocol: cached (one\n"
     "unaugmented view, standardised) or reference (the paper's: crop + flip views every epoch, raw features,\n"
     "last and best evaluation). CONFIG.yaml is optional: the checkpoint's own config is used, and a given one\n"
     "must have the same model. --random-init evaluates the network a run starts from (no checkpoint).\n"
     "--classifier: a supervised checkpoint's own classifier, top-1 per width (eval/classifier[-TAG].csv).\n"
     "--max-train/--max-test: the first N images (0 = all). Details: docs/export.md."},
    {"export", cli_export, "export --checkpoint PATH --width W --out PATH [--format slimclr|safetensors]",
     "One width's backbone as a standalone width-1.0 checkpoint, or a safetensors file with torchvision names\n"
     "(the format follows the extension: .ckpt or .safetensors; another one needs --format); tools/slimclr_torch.py\n"
     "builds it in PyTorch (numpy + torch only). The projection head is not exported. An existing training\n"
     "checkpoint is never overwritten; a directory as --out is refused."},
    {"import", cli_import, "import --from FILE.safetensors --config CONFIG.yaml --out PATH",
     "A safetensors file (torchvision names) into a slimclr checkpoint of CONFIG's model (width 1.0 exact; the\n"
     "sub-widths' BN are the leading entries of width 1.0's). NaN/Inf weights are refused; an existing training\n"
     "checkpoint is never overwritten. The result is backbone-only: for eval and features, not for --resume."},
    {"features", cli_features,
     "features [CONFIG.yaml] --checkpoint PATH --width W --split train|test --out FILE.npy [--max N]",
     "Frozen backbone features of one width for a split, as a float32 .npy matrix [n][C_w] (rank 0 writes)."},
    {"pack", cli_pack, "pack SRC_DIR --size S --out PATH",
     "Pack a folder of class sub-folders of JPEGs into one shard (shorter side resized to S, centre crop)."},
    {"bench", cli_bench, "bench CONFIG.yaml",
     "Benchmark B1 (one SlimCLR step): ms/step, images/s, GFLOP/s against the BLIS sgemm rate."},
    {"graddir", cli_graddir, "graddir RUN_DIR|grad_direction.bin",
     "The gradient direction over time (docs/method.md §8.2, as the reference's plot takes it): the last projection\n"
     "layer's gradient snapshots a run saved every eval.grad_diag_every steps (RUN_DIR/grad_direction.bin), their\n"
     "2-component PCA (centred fit) and each snapshot's projections on the two components, with its cosine to the\n"
     "previous one, as a table over the steps (tools/plot_grad_direction.sh plots it). Needs >= 3 snapshots."},
};
#define NCMDS (int)(sizeof cmds / sizeof cmds[0])

static const char *common_text =
    "Every command taking a config accepts --set key=value (repeatable, validated like the file); the keys\n"
    "are documented in docs/config.md (installed under share/doc/slimclr) and `man slimclr`.\n"
    "Exit codes: 0 ok (also a run stopped by a signal after its checkpoint), 1 runtime error (also a write\n"
    "that fails: a full disk; earlier outputs stay as they were), 2 bad usage / configuration / input /\n"
    "incompatible checkpoint / a run that does not fit in memory, 3 non-finite loss.\n";

static void print_usage(FILE *f) {
    fputs("usage: slimclr COMMAND [ARGS] [--set key=value ...]\n\n"
          "Pre-trains slimmable ResNets (widths 1.0/0.75/0.5/0.25 sharing one weight) with SlimCLR (MoCo v2, MoCo v3,\n"
          "SimCLR) data-parallel over MPI. Launch with `mpirun -np P slimclr ...`; every rank runs the same command.\n\n"
          "commands (slimclr COMMAND --help for details):\n", f);
    for (int i = 0; i < NCMDS; i++) fprintf(f, "  %s\n", cmds[i].synopsis);
    fputs("  --version     version, commit, MPI, BLIS (version, configuration, threading) and ScaLAPACK in use\n"
          "  --help        this text\n\n", f);
    fputs(common_text, f);
}

static void print_cmd_help(const cli_cmd *c) {
    printf("usage: slimclr %s [--set key=value ...]\n\n%s\n\n%s", c->synopsis, c->text, common_text);
}

/* the shared object a library was loaded from (the one actually in use, whatever the link line said) */
static int find_lib(struct dl_phdr_info *info, size_t size, void *ctx) {
    (void)size;
    char **want = ctx;
    if (info->dlpi_name && strstr(info->dlpi_name, want[0])) {
        want[1] = (char *)info->dlpi_name;
        return 1;
    }
    return 0;
}

static void print_version(void) {
    printf("slimclr %s (commit %s)\n", SLIMCLR_VERSION, SLIMCLR_COMMIT);
    printf("MPI: %s\n", comm_library_version());
    blas_set_threads(1);
    printf("CPU: %s; vector ISA %s%s\n", sc_cpu_summary(), sc_isa_name(sc_isa_active()),
           getenv("SLIMCLR_ISA") && *getenv("SLIMCLR_ISA") ? " (SLIMCLR_ISA)" : "");
    printf("BLAS: %s\n", blas_info());
    char *want[2] = {"scalapack", NULL};
    dl_iterate_phdr(find_lib, want);
    printf("ScaLAPACK: %s (link flags: %s)\n", want[1] ? want[1] : "linked statically", SLIMCLR_SCALAPACK);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* before any code built for x86-64-v3 runs: a clear message on an older CPU, not SIGILL */
    if (sc_isa_init() != SC_OK) {
        fprintf(stderr, "slimclr: %s\n", sc_isa_error());
        return 2;
    }
    char conv_msg[128];
    if (conv_algo_init(conv_msg, sizeof conv_msg)) {
        fprintf(stderr, "slimclr: %s\n", conv_msg);
        return 2;
    }
    const char *cmd = argv[1];
    const cli_cmd *c = NULL;
    if (!strcmp(cmd, "help")) { /* slimclr help [COMMAND] */
        for (int i = 0; argc > 2 && i < NCMDS; i++)
            if (!strcmp(argv[2], cmds[i].name)) c = &cmds[i];
        if (c) print_cmd_help(c);
        else print_usage(stdout);
        return 0;
    }
    for (int i = 0; i < NCMDS; i++)
        if (!strcmp(cmd, cmds[i].name)) c = &cmds[i];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        comm_init(&argc, &argv);
        if (comm_rank() == 0) print_version();
        comm_finalize();
        return 0;
    }
    if (!c) {
        fprintf(stderr, "slimclr: unknown command '%s' (try slimclr --help)\n", cmd);
        return 2;
    }
    /* help needs no MPI: it works on a login node without mpirun */
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_cmd_help(c);
            return 0;
        }
    comm_init(&argc, &argv);
    int rc = c->fn(argc - 1, argv + 1);
    /* a rank-local failure code must not leave the others in MPI_Finalize's barrier forever: codes agree */
    int any = comm_allreduce_max_int(rc);
    comm_finalize();
    return rc ? rc : (any ? 1 : 0);
}
