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
#include "decoder.h"
#include "exhaustion.h"
#include "exposition.h"
#include "log.h"
#include "logfile.h"
#include "metrics.h"
#include "netns.h"
#include "options.h"
#include "output.h"
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

__u64 run__now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Every consumer of the live stream, in the order they see an event. */
struct pipeline {
	struct output *out;
	struct timeline *tl;	/* NULL without --timeline */
	struct report *rep;	/* NULL without --report */
	struct exhaustion *ex;	/* NULL without --exhaustion or --report */
	bool ex_checks;		/* --exhaustion: checks, records, its report */
	struct metrics *metrics;	/* NULL without --metrics or --metrics-textfile */
	struct exposition *expo;
	__u64 metrics_ns;	/* when the textfile was last written */
	double metrics_build_s;	/* the last build's duration */
	__u32 netns;		/* --netns: the one namespace consumers see; 0: all */
	bool no_events;		/* --no-events: out gets the header and trailer only */
	struct cgroups *cg;	/* names, and --cgroup for the start-up snapshot */
	const struct tracer_opts *filter;	/* for the start-up snapshot */
	struct decoder *dec;
	struct tracer *tr;	/* told which sockets of the snapshot to watch */
	bool snapshots;		/* exhaustion records go into the (JSON) stream */
};

static int pipeline__event(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;
	int err;

	/* The decoder saw it (it may need it to make others); nobody else. */
	if (p->netns && ev->type != PT_EV_LOST && ev->sk.netns != p->netns)
		return 0;
	err = p->no_events ? 0 : output__event(p->out, ev);
	if (!err && p->tl)
		err = timeline__event(p->tl, ev);
	/* Before exhaustion: its samples hold what came before the event. */
	if (!err && p->rep)
		err = report__event(p->rep, ev);
	if (!err && p->ex)
		err = exhaustion__event(p->ex, ev);
	if (!err && p->metrics)
		err = metrics__event(p->metrics, ev);
	return err;
}

/* The sockets held before tracing began pass the filters the kernel
 * applies to events. */
static int pipeline__existing(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;
	const struct tracer_opts *t = p->filter;
	bool pid_ok = !t->n_pids, port_ok = !t->n_ports;

	/* --cgroup: what the kernel's filter decides for a process. */
	if (t->cgroup_id && !((ev->flags & PT_F_OWNER_KNOWN) &&
			      cgroups__pid_under(p->cg, ev->owner.pid, t->cgroup_id, t->cgroup_level)))
		return 0;
	for (int i = 0; i < t->n_pids && !pid_ok; i++)
		pid_ok = (ev->flags & PT_F_OWNER_KNOWN) && ev->owner.pid == t->pids[i];
	for (int i = 0; i < t->n_ports && !port_ok; i++)
		port_ok = ev->sk.lport == t->ports[i] || ev->sk.rport == t->ports[i];
	if (t->failures || !pid_ok || !port_ok || (t->family && t->family != ev->sk.family) ||
	    (t->proto && t->proto != ev->sk.proto) ||
	    (t->ephemeral && !pt_event_in_range(ev)))
		return 0;
	decoder__remember(p->dec, ev);
	if (decoder__prebound(ev) && tracer__watch_release(p->tr, ev->sk.cookie))
		p_warn("the release of the port %u bound before now will not be seen", ev->sk.lport);
	return pipeline__event(p, ev);
}

/* A check found a time-wait socket gone early: every consumer hears it, and
 * the decoder drops the expiry it had queued. */
static int on_tw_gone(void *ctx, const struct pt_event *ev)
{
	struct pipeline *p = ctx;

	decoder__tw_gone(p->dec, ev->sk.cookie);
	return pipeline__event(p, ev);
}

#define SNAPSHOT_MAX (60 * 1024)	/* the log reader takes lines up to 64 KiB */

/* --exhaustion: when due, a check against the socket table and a snapshot
 * record; final: the end-of-run record. */
static void exhaustion_tick(struct pipeline *p, __u64 now, bool final)
{
	static char buf[SNAPSHOT_MAX];
	static bool warned;
	int n;

	if (!p->ex_checks)
		return;
	n = final ? 0 : exhaustion__check(p->ex, now, on_tw_gone, p);
	if (n < 0 && !warned) {
		p_warn("checking counts against the socket table: %s", strerror(-n));
		warned = true;
	}
	/* Text and CSV streams carry no records: build none. */
	if (!p->snapshots)
		return;
	n = final ? exhaustion__json(p->ex, now, true, buf, sizeof(buf), NULL)
		  : exhaustion__snapshot(p->ex, now, buf, sizeof(buf));
	if (n > 0)
		output__raw(p->out, buf, n);
}

/* --metrics: build the exposition on this thread, the ring buffer's
 * reader, when a scrape wants one or, for the textfile, every interval;
 * libmicrohttpd's thread only serves the copy. */
static void metrics_tick(struct pipeline *p, const struct run_opts *o, struct tracer *tr,
			 struct decoder *dec, unsigned long long lost, __u64 now, bool final)
{
	struct tracer_prog_stat progs[64];
	struct metrics_health h = {.lost_kernel = lost,
				   .lost_write = output__dropped(p->out),
				   .bad_records = decoder__bad_records(dec),
				   .last_build_s = p->metrics_build_s,
				   .progs = progs};
	bool file_due = final || now - p->metrics_ns >= (__u64)(o->interval * 1e9);
	char *text;
	size_t len;

	if (!p->metrics || (!file_due && !exposition__wanted(p->expo)))
		return;
	h.nprogs = tracer__prog_stats(tr, progs, sizeof(progs) / sizeof(progs[0]));
	if (metrics__build(p->metrics, now, now, &h, &text, &len)) {
		p_warn("building metrics: out of memory");
		return;
	}
	p->metrics_build_s = (run__now_ns(CLOCK_MONOTONIC) - now) / 1e9;
	if (file_due)
		p->metrics_ns = now;
	exposition__publish(p->expo, text, len, file_due);
}

/* The kernel counts what it lost; turn a change into an event, in order
 * with the records around it. The last count is exact. */
static int report_lost(struct tracer *t, struct pipeline *p, unsigned long long *seen, bool final)
{
	unsigned long long total = tracer__lost(t, final);
	struct pt_event ev = {.type = PT_EV_LOST};

	if (total == *seen)
		return 0;
	ev.ts_ns = run__now_ns(CLOCK_MONOTONIC);
	ev.lost = total - *seen;
	ev.lost_total = total;
	*seen = total;
	return pipeline__event(p, &ev);
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
	struct decoder *dec = NULL;
	struct tracer *tr = NULL;
	struct cgroups *cg = NULL;
	struct netns *nsn = NULL;
	struct pipeline pipe = {};
	struct run_info info = {.version = PT_VERSION};
	struct run_stats stats = {};
	struct utsname uts;
	unsigned long long lost_seen = 0;
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
	if (opts.record_raw && !(raw = logfile__open(opts.record_raw)))
		goto cleanup;
	/* So is the report's: a file beside it is made now, renamed at exit. */
	if (opts.report) {
		pipe.rep = report__new(&(struct report_opts){}, NULL, NULL);
		if (!pipe.rep) {
			p_err("out of memory");
			goto cleanup;
		}
		if (report__prepare(pipe.rep, opts.report))
			goto cleanup;
	}
	if (install_signals()) {
		p_err("installing signal handlers: %s", strerror(errno));
		goto cleanup;
	}

	start = run__now_ns(CLOCK_MONOTONIC);
	info.start_mono_ns = start;
	info.start_realtime_ns = run__now_ns(CLOCK_REALTIME);
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
	dec = decoder__new();
	if (!out || !dec) {
		p_err("out of memory");
		goto cleanup;
	}
	pipe.out = out;
	/* The report draws the timelines' lives and samples exhaustion's
	 * figures: it has both, printed or not. */
	if (opts.timeline || opts.report) {
		pipe.tl = timeline__new(&opts.tl);
		if (!pipe.tl) {
			p_err("out of memory");
			goto cleanup;
		}
	}
	if (opts.exhaustion || opts.report) {
		struct exhaustion_opts xo = {.warn_frac = opts.warn_frac,
					     .interval_s = opts.interval,
					     .live = true,
					     .say = opts.exhaustion};

		pipe.ex = exhaustion__new(&xo);
		if (!pipe.ex) {
			p_err("out of memory");
			goto cleanup;
		}
		exhaustion__set_base(pipe.ex, start);
		pipe.ex_checks = opts.exhaustion;
		pipe.snapshots = opts.format == OUTPUT_JSON;
	}
	if (pipe.rep) {
		report__attach(pipe.rep, pipe.ex, pipe.tl);
		report__set_start(pipe.rep, start, info.start_realtime_ns);
		report__set_host(pipe.rep, info.host);
	}
	pipe.filter = &opts.trace;
	pipe.dec = dec;
	pipe.netns = opts.netns;
	pipe.no_events = opts.no_events;
	/* Names for owners and namespaces; without a cgroup v2 mount, ids. */
	cg = cgroups__new();
	nsn = netns__new();
	pipe.cg = cg;
	output__set_names(out, cg, nsn);
	if (pipe.tl)
		timeline__set_names(pipe.tl, cg);
	if (pipe.ex)
		exhaustion__set_names(pipe.ex, cg);
	if (opts.metrics || opts.metrics_textfile) {
		pipe.metrics = metrics__new(opts.metrics_max_dests, pipe.ex, cg, nsn);
		if (!pipe.metrics) {
			p_err("out of memory");
			goto cleanup;
		}
		pipe.expo = exposition__new(opts.metrics, opts.metrics_textfile);
		if (!pipe.expo)
			goto cleanup;
	}

	tr = tracer__new(&opts.trace, dec, pipeline__event, &pipe);
	if (!tr)
		goto cleanup;
	p_info("attached: %s", tracer__hooks(tr));
	pipe.tr = tr;
	if (raw)
		tracer__record_raw(tr, logfile__fd(raw));

	output__header(out, &info);
	/* After the hooks: a socket that changes from now on has events too. */
	err = sockdiag__snapshot(pipeline__existing, &pipe);
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
		now = run__now_ns(CLOCK_MONOTONIC);
		decoder__tick(dec, now, pipeline__event, &pipe);
		report_lost(tr, &pipe, &lost_seen, false);
		exhaustion_tick(&pipe, now, false);
		metrics_tick(&pipe, &opts, tr, dec, lost_seen, now, false);
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
	report_lost(tr, &pipe, &lost_seen, true);
	exhaustion_tick(&pipe, 0, true);
	metrics_tick(&pipe, &opts, tr, dec, lost_seen, run__now_ns(CLOCK_MONOTONIC), true);
	stats.lost = lost_seen;
	stats.bad = decoder__bad_records(dec);
	stats.end_mono_ns = run__now_ns(CLOCK_MONOTONIC);
	output__trailer(out, &stats);
	output__flush(out);
	if (pipe.tl && opts.timeline) {
		/* After the stream when it is on standard output, in its
		 * format; for people otherwise. */
		timeline__print(pipe.tl, stdout,
				!log && opts.format == OUTPUT_JSON ? OUTPUT_JSON : OUTPUT_TEXT, start);
	}
	if (pipe.ex_checks)
		exhaustion__report(pipe.ex, log ? stdout : stderr);
	if (pipe.rep) {
		report__finish(pipe.rep);
		if (report__write(pipe.rep, opts.report))
			err = -EIO;
	}
	fprintf(stderr, "porttrace: %llu events written, %llu lost in the kernel, %llu lost on write\n",
		output__written(out), stats.lost, output__dropped(out));
	ret = err ? 1 : 0;
cleanup:
	tracer__free(tr);
	report__free(pipe.rep);
	exposition__free(pipe.expo);
	metrics__free(pipe.metrics);
	cgroups__free(cg);
	netns__free(nsn);
	if (null_fd >= 0)
		close(null_fd);
	timeline__free(pipe.tl);
	exhaustion__free(pipe.ex);
	output__free(out);
	decoder__free(dec);
	logfile__close(log);
	logfile__close(raw);
	free((char *)info.host);
	free((char *)info.kernel);
	return ret;
}
