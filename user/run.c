// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The live run: kernel records -> decoder -> events -> consumers, until a
 * signal or --duration, then a clean drain, trailer and tally.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "cgroup.h"
#include "clock.h"
#include "exhaustion.h"
#include "exposition.h"
#include "log.h"
#include "logfile.h"
#include "metrics.h"
#include "netns.h"
#include "options.h"
#include "output.h"
#include "pipeline.h"
#include "rawfile.h"
#include "report.h"
#include "run.h"
#include "sockdiag.h"
#include "timeline.h"
#include "tracer.h"

#define POLL_MS 100		/* the longest a record waits in the ring */
#define FLUSH_NS 1000000000ULL	/* kill -9 loses at most this much */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reopen_requested;

static void on_stop(int sig)
{
	/* A second Ctrl-C means "now": the default action ends the process. */
	if (stop_requested) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_requested = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	reopen_requested = 1;
}

static int install_signals(void)
{
	struct sigaction stop = {.sa_handler = on_stop}, hup = {.sa_handler = on_hup};

	sigemptyset(&stop.sa_mask);
	sigemptyset(&hup.sa_mask);
	if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) ||
	    sigaction(SIGHUP, &hup, NULL))
		return -errno;
	return 0;
}

/* --metrics: the exposition, built on this thread (the ring buffer's
 * reader) when a scrape wants one or, for the textfile, every interval;
 * libmicrohttpd's thread only serves the copy. */
struct fleet {
	struct metrics *metrics;
	struct exposition *expo;
	__u64 written_ns;	/* when the textfile was last written */
	double build_s;		/* the last build's duration */
};

static void fleet_tick(struct fleet *fl, const struct run_opts *o, struct tracer *tr,
		       struct pipeline *pipe, struct output *out, __u64 now, bool final)
{
	struct tracer_prog_stat progs[64];
	struct run_stats st = {};
	struct metrics_health h = {.lost_write = output__dropped(out),
				   .last_build_s = fl->build_s,
				   .progs = progs};
	bool file_due = final || now - fl->written_ns >= (__u64)(o->interval * 1e9);
	char *text;
	size_t len;

	if (!fl->metrics || (!file_due && !exposition__wanted(fl->expo)))
		return;
	pipeline__stats(pipe, &st);
	h.lost_kernel = st.lost;
	h.bad_records = st.bad;
	h.nprogs = tracer__prog_stats(tr, progs, sizeof(progs) / sizeof(progs[0]));
	if (tracer__ring_fill(tr, &h.ring_bytes, &h.ring_max_queued))
		h.ring_bytes = 0;
	if (metrics__build(fl->metrics, now, now, &h, &text, &len)) {
		p_warn("building metrics: out of memory");
		return;
	}
	fl->build_s = (clock__ns(CLOCK_MONOTONIC) - now) / 1e9;
	if (file_due)
		fl->written_ns = now;
	exposition__publish(fl->expo, text, len, file_due);
}

/* Every file porttrace starts (reopened or rotated) describes itself. */
static void next_file(struct logfile *log, struct output *out, const struct run_info *info,
		      int err)
{
	if (err)
		return;
	output__set_fd(out, logfile__fd(log));
	output__header(out, info);
	output__flush(out);
}

static void handle_reopen(struct logfile *log, struct output *out, const struct run_info *info)
{
	int err;

	reopen_requested = 0;
	if (!log)
		return;
	output__flush(out);
	err = logfile__reopen(log);
	/* A stray HUP (1: the file is where it was) writes nothing new: a
	 * header in the middle of a file would start no file. */
	if (err != 1)
		next_file(log, out, info, err);
}

static void maybe_rotate(const struct run_opts *o, struct logfile *log, struct output *out,
			 const struct run_info *info)
{
	if (!log || !o->rotate_size || logfile__size(log) < (long long)o->rotate_size)
		return;
	output__flush(out);
	next_file(log, out, info, logfile__rotate(log, o->rotate_keep));
}

int run__main(int argc, char **argv)
{
	struct run_opts opts;
	struct logfile *log = NULL, *raw = NULL;
	struct output *out = NULL;
	struct tracer *tr = NULL;
	struct pipeline *pipe = NULL;
	struct pipeline_opts po = {.filter = &opts.trace};
	struct timeline *tl = NULL;
	struct exhaustion *ex = NULL;
	struct report *rep = NULL;
	struct cgroups *cg = NULL;
	struct netns *nsn = NULL;
	struct fleet fl = {};
	struct run_info info = {.version = PT_VERSION};
	struct run_stats stats = {};
	struct utsname uts;
	__u64 start, deadline = 0, last_flush;
	int err = 0, ret = 1, null_fd = -1;

	options__parse_run(argc, argv, &opts);
	log__set_verbose(opts.verbose);

	if (tracer__preflight())
		return 1;
	/* The output is checked before anything is attached. */
	if (opts.output) {
		log = logfile__open(opts.output);
		if (!log)
			return 1;
	}
	if (log && opts.record_raw && logfile__is(log, opts.record_raw)) {
		p_err("-o and --record-raw name the same file, %s; give each its own", opts.record_raw);
		goto cleanup;
	}
	if (opts.record_raw && (!(raw = logfile__open(opts.record_raw)) ||
				rawfile__begin(logfile__fd(raw), opts.record_raw)))
		goto cleanup;
	/* So is the report's: a file beside it is made now, renamed at exit. */
	if (opts.report) {
		rep = report__new(&(struct report_opts){}, NULL, NULL);
		if (!rep) {
			p_err("out of memory");
			goto cleanup;
		}
		if (report__prepare(rep, opts.report))
			goto cleanup;
	}
	if (install_signals()) {
		p_err("installing signal handlers: %s", strerror(errno));
		goto cleanup;
	}

	start = clock__ns(CLOCK_MONOTONIC);
	info.start_mono_ns = start;
	info.start_realtime_ns = clock__ns(CLOCK_REALTIME);
	if (!uname(&uts)) {
		info.host = strdup(uts.nodename);
		info.kernel = strdup(uts.release);
	}
	if (!info.host || !info.kernel) {
		p_err("out of memory");
		goto cleanup;
	}
	sockdiag__own_range(&info.range_lo, &info.range_hi);

	/* --no-events: a stream nobody reads, so header and trailer go too. */
	if (opts.no_events && (null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0) {
		p_err("opening /dev/null: %s", strerror(errno));
		goto cleanup;
	}
	out = output__new(log ? logfile__fd(log) : null_fd >= 0 ? null_fd : STDOUT_FILENO,
			  log ? logfile__path(log) : "standard output", opts.format, start);
	/* Names for owners and namespaces; without a cgroup v2 mount, ids. */
	cg = cgroups__new();
	nsn = netns__new();
	if (!out) {
		p_err("out of memory");
		goto cleanup;
	}
	output__set_names(out, cg, nsn);
	po.out = out;
	po.live = true;
	po.cg = cg;
	po.netns = opts.netns;
	po.no_events = opts.no_events;
	/* The report draws the timelines' lives and samples exhaustion's
	 * figures: it has both, printed or not. */
	if (opts.timeline || opts.report) {
		po.tl = tl = timeline__new(&opts.tl);
		if (!tl) {
			p_err("out of memory");
			goto cleanup;
		}
		timeline__set_names(tl, cg);
	}
	if (opts.exhaustion || opts.report) {
		struct exhaustion_opts xo = {.warn_frac = opts.warn_frac,
					     .interval_s = opts.interval,
					     .live = true,
					     .say = opts.exhaustion};

		po.ex = ex = exhaustion__new(&xo);
		if (!ex) {
			p_err("out of memory");
			goto cleanup;
		}
		exhaustion__set_base(ex, start);
		exhaustion__set_names(ex, cg);
		/* --report alone samples the figures: no checks, no records. */
		po.checks = opts.exhaustion;
		po.snapshots = opts.exhaustion && opts.format == OUTPUT_JSON;
	}
	if (rep) {
		report__attach(rep, ex, tl);
		report__set_start(rep, start, info.start_realtime_ns);
		report__set_host(rep, info.host);
		po.rep = rep;
	}
	pipe = pipeline__new(&po);
	if (!pipe) {
		p_err("out of memory");
		goto cleanup;
	}
	/* --metrics implies --exhaustion: the figures are exhaustion's. */
	if (opts.metrics || opts.metrics_textfile) {
		fl.metrics = metrics__new(opts.metrics_max_dests, ex, cg, nsn);
		if (!fl.metrics || pipeline__add(pipe, metrics__event, fl.metrics)) {
			p_err("out of memory");
			goto cleanup;
		}
		fl.expo = exposition__new(opts.metrics, opts.metrics_textfile);
		if (!fl.expo)
			goto cleanup;
	}

	tr = tracer__new(&opts.trace, pipeline__decoder(pipe), pipeline__event, pipe);
	if (!tr)
		goto cleanup;
	p_info("attached: %s", tracer__hooks(tr));
	pipeline__set_tracer(pipe, tr);
	if (raw)
		tracer__record_raw(tr, logfile__fd(raw));

	output__header(out, &info);
	/* After the hooks: a socket that changes from now on has events too. */
	err = pipeline__snapshot(pipe);
	if (err)
		p_warn("reading the socket table: %s; ports held before now are unknown",
		       strerror(-err));
	err = 0;
	output__flush(out);
	if (opts.duration > 0)
		deadline = start + (__u64)(opts.duration * 1e9);
	last_flush = start;

	while (!stop_requested) {
		__u64 now;

		err = tracer__poll(tr, POLL_MS);
		if (err < 0 && err != -EINTR) {
			p_err("reading the ring buffer: %s", strerror(-err));
			break;
		}
		err = 0;
		now = clock__ns(CLOCK_MONOTONIC);
		pipeline__lost(pipe, tracer__lost(tr, false), now);
		pipeline__tick(pipe, now);
		fleet_tick(&fl, &opts, tr, pipe, out, now, false);
		if (reopen_requested)
			handle_reopen(log, out, &info);
		if (now - last_flush >= FLUSH_NS) {
			output__flush(out);
			maybe_rotate(&opts, log, out, &info);
			last_flush = now;
		}
		if (deadline && now >= deadline)
			break;
	}

	/* Drain what the kernel queued before the hooks went away. */
	tracer__poll(tr, 0);
	pipeline__lost(pipe, tracer__lost(tr, true), clock__ns(CLOCK_MONOTONIC));
	pipeline__end(pipe, 0);
	fleet_tick(&fl, &opts, tr, pipe, out, clock__ns(CLOCK_MONOTONIC), true);
	pipeline__stats(pipe, &stats);
	stats.end_mono_ns = clock__ns(CLOCK_MONOTONIC);
	output__trailer(out, &stats);
	output__flush(out);
	if (tl && opts.timeline) {
		/* After the stream when it is on standard output, in its
		 * format; for people otherwise. */
		timeline__print(tl, stdout,
				!log && opts.format == OUTPUT_JSON ? OUTPUT_JSON : OUTPUT_TEXT, start);
	}
	if (ex && opts.exhaustion)
		exhaustion__report(ex, log ? stdout : stderr);
	if (rep) {
		report__finish(rep);
		if (report__write(rep, opts.report))
			err = -EIO;
	}
	fprintf(stderr, "porttrace: %llu events written, %llu lost in the kernel, %llu lost on write\n",
		output__written(out), stats.lost, output__dropped(out));
	ret = err ? 1 : 0;
cleanup:
	tracer__free(tr);
	pipeline__free(pipe);
	exposition__free(fl.expo);
	metrics__free(fl.metrics);
	report__free(rep);
	timeline__free(tl);
	exhaustion__free(ex);
	output__free(out);
	cgroups__free(cg);
	netns__free(nsn);
	if (null_fd >= 0)
		close(null_fd);
	logfile__close(log);
	logfile__close(raw);
	free((char *)info.host);
	free((char *)info.kernel);
	return ret;
}
