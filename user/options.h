/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * options: the command line of a live run, parsed and range-checked. A bad
 * value is one line on stderr and exit code 2, as argp does for the rest.
 */
#ifndef PT_OPTIONS_H
#define PT_OPTIONS_H

#include <stdbool.h>
#include "output.h"
#include "timeline.h"
#include "tracer.h"

struct run_opts {
	struct tracer_opts trace;
	__u32 pids[PT_MAX_PIDS];
	__u16 ports[PT_MAX_PORTS];
	const char *output;	/* NULL: stdout */
	const char *record_raw;	/* diagnostics: raw kernel records */
	unsigned long long rotate_size;	/* bytes; 0: never rotate */
	unsigned int rotate_keep;
	enum output_format format;
	double duration;	/* seconds; 0: until a signal */
	bool verbose;
	bool timeline;		/* print per-process timelines at exit */
	struct timeline_opts tl;
	char *comms[PT_MAX_PIDS];
	bool exhaustion;	/* port exhaustion figures: log snapshots, report */
	double interval;	/* seconds between exhaustion snapshots and checks */
	double warn_frac;	/* warn when a destination is this full, 0..1 */
	bool no_events;		/* write no events: metrics and reports only */
	const char *metrics;	/* --metrics ADDR:PORT; NULL: no server */
	const char *metrics_textfile;	/* NULL: none */
	unsigned int metrics_max_dests;
	__u32 netns;		/* --netns: only this namespace; 0: all */
	const char *report;	/* an HTML report written at exit; NULL: none */
};

/* Parse argv into o; exits with code 2 on a usage error. */
void options__parse_run(int argc, char **argv, struct run_opts *o);

#define PT_ROTATE_KEEP 5

struct argp_state;

/* The FILE... operands of an offline command (timeline, exhaustion): takes
 * them at ARGP_KEY_ARG, insists on one at ARGP_KEY_END. True when key was
 * one of those two. */
bool options__files(int key, struct argp_state *state, char ***files, int *nfiles);

/* --warn PCT and --interval SECONDS, as every command that has them takes
 * them: a bad value is argp's usage error. */
void options__warn(struct argp_state *state, const char *arg, double *frac);
void options__interval(struct argp_state *state, const char *arg, double *seconds);

/* Strict number parsing shared by every command: 0 or -EINVAL/-ERANGE. */
int options__parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);
int options__parse_seconds(const char *s, double *out);
/* "80" or "80%", 1..100, as a fraction (0.8). */
int options__parse_pct(const char *s, double *frac);

#endif /* PT_OPTIONS_H */
