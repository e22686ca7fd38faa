/*
 * cli/cli.h — the sedflow command-line tool: one file per subcommand
 * (cli/cmd_<name>.c defines `int cmd_<name>(int argc, char **argv)`), and a
 * few shared helpers.  Only the CLI prints and chooses exit codes:
 * 0 success, 1 runtime failure (message from sf_last_error), 2 usage error.
 */
#ifndef SEDFLOW_CLI_H
#define SEDFLOW_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "sedflow/catalog.h"
#include "sedflow/error.h"
#include "sedflow/sedpost.h"

int cmd_sed(int argc, char **argv);
int cmd_noise(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_logprob(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_mcmc(int argc, char **argv);
int cmd_compare(int argc, char **argv);

/* Print "sedflow <cmd>: error: <sf_last_error()>" to stderr; returns 1. */
int cli_fail(const char *cmd, sf_status st);
/* Print "sedflow <cmd>: <message>" plus a hint to use --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse helpers: return 0 on success, nonzero (after printing) on bad input. */
int cli_parse_double(const char *cmd, const char *opt, const char *s, double *v);
int cli_parse_long(const char *cmd, const char *opt, const char *s, long *v);
/* --seed S: an integer >= 0 (a negative one wrapped to a huge unsigned seed). */
int cli_parse_seed(const char *cmd, const char *s, long *v);
/* --threads T: an integer in [0, SF_MAX_THREADS] (core/threads.h; 0: all
 * cores); otherwise prints why (cli_usage_error) and returns 1 (the library
 * would cut it silently, and a long beyond INT_MAX wrapped when cast). */
int cli_parse_threads(const char *cmd, const char *s, long *v);
/* Comma-separated list of exactly n doubles. */
int cli_parse_doubles(const char *cmd, const char *opt, const char *s, double *v, size_t n);

/* Comma-separated list of integers "a,b,c" into a new array (free()):
 * returns 0, or nonzero (nothing printed) on bad input. */
int cli_parse_id_list(const char *s, long long **out, size_t *n);
/* Catalog rows of n selected galaxies: by 0-based row (by_row) or by id.
 * Errors: SF_EINVAL naming the first one not in the catalog. */
sf_status cli_catalog_rows(const sf_catalog *cat, const long long *sel, size_t n, int by_row, size_t *rows);

/* ---- MCMC sampler options shared by mcmc, compare and infer --mcmc-fallback.
 * A command lists CLI_MCMC_OPTIONS(prefix, iteration-option name) among
 * its getopt_long options, passes every code c with cli_mcmc_is_option(c)
 * to cli_mcmc_parse, and ends with cli_mcmc_finish. */
enum {
    CLI_MCMC_MOVE = 0x4d00, CLI_MCMC_WALKERS, CLI_MCMC_ITER, CLI_MCMC_BURN, CLI_MCMC_THIN,
    CLI_MCMC_START, CLI_MCMC_NSTART, CLI_MCMC_PRIOR, CLI_MCMC_END
};
#define CLI_MCMC_OPTIONS(P, ITER)                                                                                     \
    {P "move", required_argument, 0, CLI_MCMC_MOVE}, {P "walkers", required_argument, 0, CLI_MCMC_WALKERS},            \
    {P ITER, required_argument, 0, CLI_MCMC_ITER}, {P "burn", required_argument, 0, CLI_MCMC_BURN},                    \
    {P "thin", required_argument, 0, CLI_MCMC_THIN}, {P "start", required_argument, 0, CLI_MCMC_START},               \
    {P "n-start", required_argument, 0, CLI_MCMC_NSTART}, {P "prior", required_argument, 0, CLI_MCMC_PRIOR}

typedef enum { CLI_MCMC_START_PRIOR = 0, CLI_MCMC_START_BEST = 1, CLI_MCMC_START_ANPE = 2 } cli_mcmc_start;

typedef struct {
    const char *prefix, *iter_name; /* option names: --<prefix>walkers, --<prefix><iter_name> */
    int allow_anpe;                 /* --start anpe accepted */
    long walkers, iters, burn, thin, nstart; /* iters: in all, burn-in included; nstart -1: 100 x walkers */
    cli_mcmc_start start;
    sf_mcmc_move move;
    sf_prior_kind prior;
} cli_mcmc;

/* Defaults: the paper's 30 walkers x 10,000 iterations (2,000 burn-in),
 * thin 1, slice move, prior start, SEDflow prior. */
void cli_mcmc_init(cli_mcmc *a, const char *prefix, const char *iter_name, int allow_anpe);
static inline int cli_mcmc_is_option(int c) { return c >= CLI_MCMC_MOVE && c < CLI_MCMC_END; }
/* Parse the argument of option code c: 0, or 2 after printing a usage error. */
int cli_mcmc_parse(cli_mcmc *a, const char *cmd, int c, const char *arg);
/* Check the values (walkers even >= 22, 0 <= burn < iterations, >= min_kept
 * kept steps) and fill so (walkers, nburn, niter = iterations - burn, thin,
 * move, prior, n_start; the seed is the caller's): 0, or 2 after printing. */
int cli_mcmc_finish(const cli_mcmc *a, const char *cmd, size_t min_kept, sf_sedpost_opts *so);
/* Print the help lines of these options (names with the prefix). */
void cli_mcmc_help(const cli_mcmc *a);
const char *cli_mcmc_move_name(sf_mcmc_move m);

/* Default prepared-data folder: $SEDFLOW_DATA, else the build's default. */
const char *cli_data_dir(void);
/* Default noise model: $SEDFLOW_NOISE, else models/noise_nsa.h5 of the source tree. */
void cli_noise_path(char *buf, size_t len);

/* A text progress bar with ETA on stderr (only when stderr is a terminal or
 * `force` is set); call with done = total at the end. */
typedef struct {
    const char *label;
    size_t total;
    double t_start; /* seconds */
    double t_last;
    int enabled;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, size_t total);
void cli_progress_update(cli_progress *p, size_t done);

/* Wall-clock seconds (monotonic). */
double cli_now(void);

/* 0 when `path` (given by option `opt`) can be written as an output file:
 * not a folder, its folder exists and is writable, and it is none of the n
 * files in `inputs` (NULL entries skipped): the same device and inode, or,
 * for a file that does not exist yet, the same resolved folder and name.
 * Otherwise prints why (cli_usage_error) and returns 2: call it before any
 * work, for every file a command writes (with the other outputs as inputs
 * too, so that two outputs cannot be one file). */
int cli_check_output_path(const char *cmd, const char *opt, const char *path, const char *const *inputs, size_t n);

#endif
