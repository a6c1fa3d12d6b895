// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * porttrace top: the exhaustion figures of a live trace, a screen a second,
 * fullest destinations first. Plain ANSI only (cursor home, erase to end of
 * line and of screen, hide the cursor; no colour, no terminfo), so that it
 * works in any 80x24 terminal, over ssh too. Keys are read as they are
 * typed: termios without ICANON and ECHO, restored on every way out, a
 * second Ctrl-C included. Without a terminal (--batch, or standard output
 * not a tty) it prints a plain frame a second instead.
 */
#define _GNU_SOURCE
#include <argp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "addr.h"
#include "clock.h"
#include "escape.h"
#include "pipeline.h"
#include "exhaustion.h"
#include "log.h"
#include "names.h"
#include "options.h"
#include "tracer.h"

#define FRAME_NS 1000000000ULL
#define POLL_MS 100
#define BATCH_COLS 80
#define MIN_COLS 60
#define MIN_DEST_COLS 12
#define LINE_MAX_COLS 512	/* wider terminals get this much */

enum top_sort {
	SORT_OCCUPANCY,
	SORT_RATE,
	SORT_FAILURES,
};

static const char *const sort_names[] = {"occupancy", "rate", "failures"};

struct top_args {
	struct exhaustion_opts xo;
	double duration;
	enum top_sort sort;
	bool batch;
	bool verbose;
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t resized;
/* For the signal handler: a second Ctrl-C ends the process at once, and
 * must not leave the terminal without echo. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void on_stop(int sig)
{
	if (stop_requested) {
		if (tio_saved)
			tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_requested = 1;
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

static int install_signals(void)
{
	struct sigaction stop = {.sa_handler = on_stop}, winch = {.sa_handler = on_winch};

	sigemptyset(&stop.sa_mask);
	sigemptyset(&winch.sa_mask);
	if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) ||
	    sigaction(SIGWINCH, &winch, NULL))
		return -errno;
	return 0;
}

/* ---- the terminal ---- */

static int term_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &saved_tio))
		return -errno;
	tio_saved = 1;
	t = saved_tio;
	/* ISIG stays: Ctrl-C is still SIGINT. */
	t.c_lflag &= ~(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t))
		return -errno;
	/* Hide the cursor, clear the screen. */
	fputs("\033[?25l\033[H\033[2J", stdout);
	fflush(stdout);
	return 0;
}

static void term_restore(void)
{
	if (!tio_saved)
		return;
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	tio_saved = 0;
	/* Cursor back, below what was drawn. */
	fputs("\033[?25h\n", stdout);
	fflush(stdout);
}

static void term_size(int *rows, int *cols)
{
	struct winsize ws;

	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	} else {
		*rows = 24;
		*cols = BATCH_COLS;
	}
	if (*cols > LINE_MAX_COLS)
		*cols = LINE_MAX_COLS;
}

/* ---- a frame ---- */

struct frame {
	char *buf;
	size_t len, cap;
	int cols;
	int lines;
	bool tty;
};

static void raw(struct frame *f, const char *s)
{
	size_t n = strlen(s);

	if (f->len + n > f->cap) {
		char *b = realloc(f->buf, (f->len + n) * 2);

		if (!b)
			return;
		f->buf = b;
		f->cap = (f->len + n) * 2;
	}
	memcpy(f->buf + f->len, s, n);
	f->len += n;
}

/* One line, cut to the width; on a terminal each line also erases what an
 * older, longer frame left there. */
static void __attribute__((format(printf, 2, 3))) line(struct frame *f, const char *fmt, ...)
{
	char tmp[LINE_MAX_COLS + 1];
	va_list ap;
	size_t n, need;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	n = strlen(tmp);
	if (n > (size_t)f->cols)
		n = f->cols;
	need = f->len + n + 8;
	if (need > f->cap) {
		size_t cap = need * 2;
		char *b = realloc(f->buf, cap);

		if (!b)
			return;
		f->buf = b;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, tmp, n);
	f->len += n;
	if (f->tty)
		raw(f, "\033[K");
	raw(f, "\n");
	f->lines++;
}

/* "tcp 127.0.0.1 > 10.1.2.3:443" in at most width columns: the local
 * address goes first when there is no room, then the end is cut ('~'). */
static void fmt_dest(char *buf, size_t len, const struct exhaustion_row *r, int width)
{
	char la[INET6_ADDRSTRLEN], remote[ADDR_STRLEN];
	const char *proto = names__proto(r->proto);

	if (r->any) {
		snprintf(buf, len, "%s %s", proto,
			 r->proto == IPPROTO_UDP ? "every destination" : "any new destination");
	} else {
		addr__str(la, r->family, r->laddr);
		addr__str_port(remote, r->family, r->raddr, r->rport);
		snprintf(buf, len, "%s %s > %s", proto, la, remote);
		if ((int)strlen(buf) > width)
			snprintf(buf, len, "%s > %s", proto, remote);
	}
	if ((int)strlen(buf) > width && width > 1 && (size_t)width < len) {
		buf[width - 1] = '~';
		buf[width] = '\0';
	}
}

static double frac(const struct exhaustion_row *r)
{
	return r->capacity ? (double)r->occupancy / r->capacity : 0;
}

static enum top_sort cur_sort;

static int row_cmp(const void *a, const void *b)
{
	const struct exhaustion_row *x = a, *y = b;

	switch (cur_sort) {
	case SORT_RATE:
		if (x->alloc_per_s != y->alloc_per_s)
			return x->alloc_per_s > y->alloc_per_s ? -1 : 1;
		break;
	case SORT_FAILURES:
		if (x->failures != y->failures)
			return x->failures > y->failures ? -1 : 1;
		if (x->last_fail_ns != y->last_fail_ns)
			return x->last_fail_ns > y->last_fail_ns ? -1 : 1;
		break;
	default:
		break;
	}
	if (frac(x) != frac(y))
		return frac(x) > frac(y) ? -1 : 1;
	if (x->failures != y->failures)
		return x->failures > y->failures ? -1 : 1;
	return x->netns < y->netns ? -1 : x->netns > y->netns;
}

/* A pool's own row is worth a line when something holds ports for all its
 * destinations, or when it is UDP, where that is all there is. */
static bool row_wanted(const struct exhaustion_row *r)
{
	return !r->any || r->proto == IPPROTO_UDP || r->shared || r->failures;
}

static void detail_line(struct frame *f, const struct exhaustion_row *r)
{
	char who[512] = "", st[96] = "", comm[ESCAPE_TEXT_LEN(PT_TASK_COMM_LEN)];
	size_t off = 0;

	if (!r->any && r->proto == IPPROTO_TCP)
		snprintf(st, sizeof(st), " syn %u est %u fin %u tw %u", r->state[EXH_CONNECTING],
			 r->state[EXH_ESTABLISHED], r->state[EXH_CLOSING], r->state[EXH_TIME_WAIT]);
	for (unsigned int i = 0; i < r->ntop && off < sizeof(who); i++) {
		const struct exhaustion_proc *p = &r->top[i];

		off += snprintf(who + off, sizeof(who) - off, "%s%u %s %u%s", i ? ", " : "  by ",
				p->pid, p->pid ? escape__text(comm, p->comm, sizeof(p->comm)) : "?",
				p->held,
				p->failures ? "!" : "");
	}
	line(f, "      ns %u%s%s", r->netns, st, who);
}

static void draw(struct frame *f, struct exhaustion *e, unsigned long long lost, __u64 now,
		 int rows, bool batch)
{
	struct exhaustion_status st;
	struct exhaustion_row *v;
	size_t n, shown = 0, wanted = 0;
	int dest_w = f->cols - 49, room;
	char a[32], b[32], dest[LINE_MAX_COLS + 1];

	if (dest_w < MIN_DEST_COLS)
		dest_w = MIN_DEST_COLS;
	exhaustion__status(e, &st);
	v = exhaustion__rows(e, now, &n);
	f->len = 0;
	f->lines = 0;
	if (f->tty)
		raw(f, "\033[H");	/* drawn over the last frame: no flicker */
	line(f, "porttrace top  +%.0fs  events %llu  lost %llu  warn %.0f%%  warnings %lu  sort: %s",
	     (now - st.base_ns) / 1e9, st.events, lost, st.warn_frac * 100, st.warnings,
	     sort_names[cur_sort]);
	if (!st.checked)
		line(f, "socket table check: not yet");
	else if (st.check_persistent)
		line(f, "socket table check +%.0fs: DIFFERS by %lu ports (events %lu, kernel %lu)",
		     (st.check_ns - st.base_ns) / 1e9, st.check_persistent, st.check_events,
		     st.check_kernel);
	else
		line(f, "socket table check +%.0fs: agrees (%lu ports)", (st.check_ns - st.base_ns) / 1e9,
		     st.check_kernel);
	line(f, " USE    HELD/CAP ALLOC/s FULL-IN   FAIL    P99 DESTINATION");
	for (size_t i = 0; v && i < n; i++)
		wanted += row_wanted(&v[i]);
	if (v)
		qsort(v, n, sizeof(*v), row_cmp);
	/* Two lines a destination; the key help takes the last one. */
	room = batch ? (int)(2 * wanted) : rows - f->lines - 1;
	for (size_t i = 0; v && i < n; i++) {
		const struct exhaustion_row *r = &v[i];
		char held[32];

		if (!row_wanted(r))
			continue;
		if (room < 2 || (room < 4 && shown + 1 < wanted)) {
			line(f, "  ... %zu more", wanted - shown);
			break;
		}
		snprintf(held, sizeof(held), "%u/%u", r->occupancy, r->capacity);
		fmt_dest(dest, sizeof(dest), r, dest_w);
		line(f, "%3.0f%% %11s %7.1f %7s %6llu %6s %s", frac(r) * 100, held, r->alloc_per_s,
		     names__eta(r->full_in_s, true, a, sizeof(a)), r->failures,
		     r->lat_p99_ns ? names__duration(r->lat_p99_ns, b, sizeof(b)) : "-", dest);
		detail_line(f, r);
		shown++;
		room -= 2;
	}
	if (!wanted)
		line(f, "  (no port of an ephemeral range held or refused yet)");
	if (f->tty) {
		while (f->lines < rows - 1)
			line(f, "%s", "");
		line(f, "keys: o occupancy  r rate  f failures  q quit");
		/* The last line has no newline: it would scroll the screen. */
		f->len -= 1;
		raw(f, "\033[J");
	} else {
		line(f, "%s", "");
	}
	free(v);
}

static void show(const struct frame *f)
{
	size_t off = 0;

	while (off < f->len) {
		ssize_t k = write(STDOUT_FILENO, f->buf + off, f->len - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		off += k;
	}
}

/* 1: the view changed; -1: quit. */
static int read_keys(void)
{
	char buf[32];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	int ret = 0;

	for (ssize_t i = 0; i < n; i++) {
		switch (buf[i]) {
		case 'q':
		case 'Q':
			return -1;
		case 'o':
			cur_sort = SORT_OCCUPANCY, ret = 1;
			break;
		case 'r':
			cur_sort = SORT_RATE, ret = 1;
			break;
		case 'f':
			cur_sort = SORT_FAILURES, ret = 1;
			break;
		default:
			break;
		}
	}
	return ret;
}

/* ---- command line ---- */

static const struct argp_option top_options[] = {
	{"duration", 'd', "SECONDS", 0, "Stop after SECONDS", 0},
	{"batch", 'b', NULL, 0, "Print plain frames, one a second, without a terminal (for scripts)", 0},
	{"sort", 's', "KEY", 0, "occupancy (default), rate or failures; keys o, r, f switch", 0},
	{"warn", 'w', "PCT", 0, "Warning threshold, 1..100, e.g. 80 or 80% (default 80)", 0},
	{"interval", 'i', "SECONDS", 0, "Seconds between checks against the socket table (default 10)",
	 0},
	{"verbose", 'v', NULL, 0, "Show libbpf's log", 0},
	{},
};

static error_t top_parse(int key, char *arg, struct argp_state *state)
{
	struct top_args *a = state->input;
	size_t i;

	switch (key) {
	case 'd':
		if (options__parse_seconds(arg, &a->duration))
			argp_error(state, "invalid duration '%s': expected seconds > 0", arg);
		break;
	case 'b':
		a->batch = true;
		break;
	case 's':
		for (i = 0; i < sizeof(sort_names) / sizeof(sort_names[0]); i++)
			if (!strcmp(arg, sort_names[i]))
				break;
		if (i == sizeof(sort_names) / sizeof(sort_names[0]))
			argp_error(state, "invalid sort '%s': expected occupancy, rate or failures", arg);
		a->sort = i;
		break;
	case 'w':
		options__warn(state, arg, &a->xo.warn_frac);
		break;
	case 'i':
		options__interval(state, arg, &a->xo.interval_s);
		break;
	case 'v':
		a->verbose = true;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int top__main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = top_options,
		.parser = top_parse,
		.doc = "Live view of ephemeral port exhaustion: the fullest destinations first, with\n"
		       "their occupancy, allocation rate, time until full, failures, connect()\n"
		       "latency and the processes behind them. Keys: o, r, f sort; q quits.\v"
		       "Examples:\n"
		       "  porttrace top\n"
		       "  porttrace top --batch -d 5 --sort failures   # five plain frames\n"
		       "\n"
		       "Needs root, as a live trace does.",
	};
	struct top_args a = {.xo = {.warn_frac = 0.8, .interval_s = 10, .live = true}};
	struct tracer_opts topts = {.ring_mb = PT_DEFAULT_RING_MB};
	struct frame f = {};
	struct exhaustion *e = NULL;
	struct pipeline *pipe = NULL;
	struct tracer *tr = NULL;
	__u64 start, deadline = 0, next_frame;
	int rows = 24, err, ret = 1;
	bool tty;

	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, &a);
	log__set_verbose(a.verbose);
	cur_sort = a.sort;
	tty = !a.batch && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
	f.tty = tty;

	if (tracer__preflight())
		return 1;
	if (install_signals()) {
		p_err("installing signal handlers: %s", strerror(errno));
		return 1;
	}
	e = exhaustion__new(&a.xo);
	if (e)
		pipe = pipeline__new(&(struct pipeline_opts){.ex = e, .live = true, .checks = true});
	if (!pipe) {
		p_err("out of memory");
		goto cleanup;
	}
	start = clock__ns(CLOCK_MONOTONIC);
	exhaustion__set_base(e, start);
	tr = tracer__new(&topts, pipeline__decoder(pipe), pipeline__event, pipe);
	if (!tr)
		goto cleanup;
	pipeline__set_tracer(pipe, tr);
	err = pipeline__snapshot(pipe);
	if (err)
		p_warn("reading the socket table: %s; ports held before now are unknown",
		       strerror(-err));
	if (tty && term_raw()) {
		p_err("setting up the terminal: %s", strerror(errno));
		goto cleanup;
	}
	if (a.duration > 0)
		deadline = start + (__u64)(a.duration * 1e9);
	next_frame = start;

	while (!stop_requested) {
		__u64 now;
		int k;

		err = tracer__poll(tr, POLL_MS);
		if (err < 0 && err != -EINTR) {
			term_restore();
			p_err("reading the ring buffer: %s", strerror(-err));
			goto cleanup;
		}
		now = clock__ns(CLOCK_MONOTONIC);
		pipeline__lost(pipe, tracer__lost(tr, false), now);
		pipeline__tick(pipe, now);
		if (tty && (k = read_keys())) {
			if (k < 0)
				break;
			next_frame = now;
		}
		if (deadline && now >= deadline)
			break;
		if (resized || now >= next_frame) {
			resized = 0;
			term_size(&rows, &f.cols);
			if (!tty)
				f.cols = BATCH_COLS;
			if (f.cols < MIN_COLS)
				f.cols = MIN_COLS;
			draw(&f, e, tracer__lost(tr, true), now, rows, !tty);
			show(&f);
			next_frame = now + FRAME_NS;
		}
	}
	if (!tty) {
		/* The last frame, with everything the kernel queued. */
		tracer__poll(tr, 0);
		pipeline__lost(pipe, tracer__lost(tr, true), clock__ns(CLOCK_MONOTONIC));
		f.cols = BATCH_COLS;
		draw(&f, e, tracer__lost(tr, true), clock__ns(CLOCK_MONOTONIC), rows, true);
		show(&f);
	}
	ret = 0;
cleanup:
	term_restore();
	tracer__free(tr);
	pipeline__free(pipe);
	exhaustion__free(e);
	free(f.buf);
	return ret;
}
