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

#include "sedflow/error.h"

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
/* Comma-separated list of exactly n doubles. */
int cli_parse_doubles(const char *cmd, const char *opt, const char *s, double *v, size_t n);

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

#endif
