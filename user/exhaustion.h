/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * exhaustion: how close each network namespace is to running out of
 * ephemeral ports, per destination, from the event stream: capacity,
 * occupancy by state, peak, allocation and release rates, failures,
 * connect() latency percentiles, forecast and warnings.
 *
 * The figures are kept per pool, one (netns, protocol): TCP and UDP have
 * separate port spaces, IPv4 and IPv6 share one.
 *  - capacity: the namespace's ephemeral range as the latest event shows
 *    it (a range changed by sysctl shows with the namespace's next port
 *    event), minus its reserved ports: read from the namespace itself in a
 *    live run, and in any run every port an event flagged PT_F_RESERVED;
 *  - TCP ports taken by connect() are unique per 4-tuple, so they are
 *    counted per destination (local address, remote address, remote port)
 *    and by state, from when the port is known (the syscall returns or the
 *    handshake ends) until it is released; TIME_WAIT holds it until the
 *    decoder's computed expiry, or until a new connect() to the same
 *    destination takes the same port over (tcp_tw_reuse);
 *  - ports held by bind() (bind(0) included), listen() and every UDP port
 *    are "shared": they count against every destination, once per port;
 *  - the time-wait socket an accepted socket leaves (the server closed
 *    first) holds its listener's port toward one peer: no ephemeral port,
 *    so no occupancy, but counted apart per pool (a bind() of that port
 *    without SO_REUSEADDR fails while it lasts) and compared by the check;
 *  - occupancy of a destination = its own ports + the shared ones, counted
 *    only inside the range and outside the reserved ports;
 *  - rates are ports taken and given back per second over the last 10 s
 *    of event time; "full in" = free ports / (net rate of the destination's
 *    own ports + net rate of the shared ones), when that is positive;
 *  - connect() latency percentiles (alloc, connect and alloc-fail events)
 *    come from a log-linear histogram, 8 buckets per power of two, nearest
 *    rank, bucket midpoint: within 6%; for the whole run, and per window
 *    of interval_s event time counted from the first event.
 * All times are event times, so a log read back (with the same interval)
 * gives the figures the live run gave at its end.
 */
#ifndef PT_EXHAUSTION_H
#define PT_EXHAUSTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "event.h"

struct exhaustion_opts {
	double warn_frac;	/* warn when occupancy crosses this, 0..1 */
	double interval_s;	/* seconds between records and checks; latency windows */
	bool live;		/* may look at the running host: reserved ports, checks */
	bool say;		/* p_warn() each warning as it happens */
};

struct exhaustion;

struct exhaustion *exhaustion__new(const struct exhaustion_opts *o);
void exhaustion__free(struct exhaustion *e);

/* The consumer: every event of the stream, live or read from a log. */
int exhaustion__event(void *e, const struct pt_event *ev);

/*
 * Live only: compare with the kernel's socket table; report divergence.
 * Sockets are compared by cookie; a difference that is still there at the
 * next check is "persistent", the rest was in flight.
 *
 * A time-wait socket gone before its time has no event of its own: a RST
 * received in TIME-WAIT kills it (net.ipv4.tcp_rfc1337=0), and a close the
 * hooks took for a hand-over may have made none (tcp_max_tw_buckets). One
 * the table lacks, and a lookup of its own confirms gone, is given back with
 * a release event (reason PT_REASON_TW_GONE, at now_ns) passed to gone(ctx),
 * which must bring it back here through exhaustion__event().
 *
 * In two halves, so that the slow one (reading every namespace's table)
 * runs on a thread of its own: exhaustion_dump__take() looks at the kernel
 * only and is safe on any thread; exhaustion__check_apply() compares, on
 * the thread that feeds events.
 */
struct exhaustion_dump;

/* Whether a check is due at now_ns (once per interval; never offline). */
bool exhaustion__check_due(struct exhaustion *e, __u64 now_ns);
struct exhaustion_dump *exhaustion_dump__take(void);
void exhaustion_dump__free(struct exhaustion_dump *c);
/* 0, or the -errno that spoiled the dump. */
int exhaustion_dump__error(const struct exhaustion_dump *c);
/* The cookie of every socket the dump saw: *v, how many returned. */
size_t exhaustion_dump__cookies(const struct exhaustion_dump *c, const __u64 **v);
/* 1 when compared, or -errno. */
int exhaustion__check_apply(struct exhaustion *e, const struct exhaustion_dump *c, __u64 now_ns,
			    pt_event_fn gone, void *ctx);

/*
 * One JSON Lines snapshot record ({"type":"exhaustion",...}\n) of the
 * figures at now_ns into buf; returns its length, 0 when nothing is due
 * (interval not elapsed), or -ENOSPC when cap is too small.
 */
int exhaustion__snapshot(struct exhaustion *e, __u64 now_ns, char *buf, size_t cap);

/*
 * The same record, now, whether due or not. final: the figures at the last
 * event's time (the run's end), marked "final":true; what
 * "porttrace exhaustion --format json" prints for the same events. A
 * record that would not fit lists fewer destinations ("more_dests"); with
 * buf NULL it is written to f, whole.
 */
int exhaustion__json(struct exhaustion *e, __u64 now_ns, bool final, char *buf, size_t cap, FILE *f);

/* The human report printed at exit and by "porttrace exhaustion FILE". */
void exhaustion__report(struct exhaustion *e, FILE *f);

/* The report names processes' units and containers from cg (borrowed). */
struct cgroups;
void exhaustion__set_names(struct exhaustion *e, struct cgroups *cg);

/* Times in the report and in views are printed relative to base_ns
 * (the run's start); by default the first event's time. */
void exhaustion__set_base(struct exhaustion *e, __u64 base_ns);

/* ---- figures, for views (porttrace top) ---- */

enum exhaustion_state {
	EXH_CONNECTING,		/* SYN_SENT: the port is taken */
	EXH_ESTABLISHED,
	EXH_CLOSING,		/* FIN_WAIT1/2, CLOSING, CLOSE_WAIT, LAST_ACK */
	EXH_TIME_WAIT,
	EXH_STATES,
};

#define EXH_TOP_PROCS 3

/* Allocation failures by what the kernel said. */
enum exhaustion_err {
	EXH_ERR_ADDRNOTAVAIL,	/* connect(): no port for this destination */
	EXH_ERR_ADDRINUSE,	/* bind(0): the range is full */
	EXH_ERR_AGAIN,		/* UDP autobind */
	EXH_ERR_OTHER,
	EXH_ERRS,
};

struct exhaustion_proc {
	__u32 pid;
	__u64 cgroup_id;
	char comm[PT_TASK_COMM_LEN];
	unsigned int held;
	unsigned long long failures;
};

/* One destination of a pool, or the pool itself (any: what a destination
 * it has never seen would find). */
struct exhaustion_row {
	__u32 netns;
	__u8 proto;
	__u8 family;		/* 0 for the pool row */
	bool any;
	__u8 laddr[16], raddr[16];
	__u16 rport;
	__u16 range_lo, range_hi;
	unsigned int capacity, reserved;
	unsigned int occupancy;	/* own + shared */
	unsigned int server_tw;	/* pool row: time-wait sockets of accepted ones */
	unsigned int own, shared;
	unsigned int state[EXH_STATES];
	unsigned int peak;
	__u64 peak_ns;
	double alloc_per_s, release_per_s;
	double full_in_s;	/* at the net rate; < 0: not filling up */
	unsigned long long failures;
	__u64 first_fail_ns, last_fail_ns;
	int fail_err;		/* the errno of the failures, last seen */
	unsigned long long fail_by[EXH_ERRS];
	unsigned long long allocs, releases;	/* ports taken and given back, whole run */
	unsigned long long lat_n;
	__u64 lat_p50_ns, lat_p90_ns, lat_p99_ns;
	struct exhaustion_proc top[EXH_TOP_PROCS];	/* by ports held */
	unsigned int ntop;
	size_t dests;		/* pool row: its destinations worth a row, listed or not */
};

struct exhaustion_status {
	unsigned long long events, lost;
	__u64 first_ns, last_ns, base_ns;
	double warn_frac;
	unsigned long warnings;
	bool checked;		/* a check has run */
	__u64 check_ns;
	unsigned long check_kernel, check_events;
	unsigned long check_missing, check_extra;	/* last check */
	unsigned long check_persistent;			/* seen twice running */
	unsigned long check_unreachable;	/* ports in namespaces no check can read */
	__u64 check_dump_ns;	/* the last check: reading the kernel (own thread) */
	__u64 check_apply_ns;	/* comparing, between events */
	/* What is held now: destinations, processes and sockets followed. */
	size_t dests, procs, socks;
};

/* Every row at now_ns (0: the last event's time), pools by their fullest
 * destination, the pool row first. *n is set; free() the result. */
struct exhaustion_row *exhaustion__rows(struct exhaustion *e, __u64 now_ns, size_t *n);
/* The same with at most max destinations per pool, the fullest (a pool
 * row's dests says how many there are): what a view that shows the top
 * of each pool needs, at a cost that follows max, not every destination. */
struct exhaustion_row *exhaustion__rows_top(struct exhaustion *e, __u64 now_ns, size_t max,
					    size_t *n);
void exhaustion__status(const struct exhaustion *e, struct exhaustion_status *st);

/*
 * connect() latency of row r's destination as cumulative counts: cum[i] is
 * how many took less than 2^le_exp[i] ns (le_exp ascending; past the
 * histogram's 2^40 ns, all of them), *sum_ns their total. 0 when r has no
 * latency (cum zeroed), 1 otherwise.
 */
int exhaustion__latency(const struct exhaustion *e, const struct exhaustion_row *r,
			const unsigned int *le_exp, size_t n, unsigned long long *cum, __u64 *sum_ns);

/* ---- samples over time, for views that draw them (porttrace report) ---- */

#define EXH_LAT_BUCKETS 304	/* connect() latency histogram: 8 buckets per power of two */

/* One destination (or pool row) as it stands, read without walking its
 * sockets: cheap enough to take at every time-bucket boundary. */
struct exhaustion_sample {
	const void *key;	/* the same destination, the same key, for the whole run */
	__u32 netns;
	__u8 proto;
	__u8 family;		/* 0 for the pool row */
	bool any;
	__u8 laddr[16], raddr[16];
	__u16 rport;
	unsigned int capacity, occupancy, shared;
	unsigned int state[EXH_STATES];	/* own ports by state (TCP destinations) */
	unsigned int peak;
	__u64 peak_ns;
	unsigned long long failures;	/* so far */
	int fail_err;
	const __u32 *lat;	/* cumulative latency counts, EXH_LAT_BUCKETS; NULL: no call yet */
	unsigned long long lat_n;
};

typedef int (*exhaustion_sample_fn)(void *ctx, const struct exhaustion_sample *s);

/* fn for every pool row and every destination worth a row, as of the last
 * event; stops at fn's first non-zero result, which it returns. */
int exhaustion__each(struct exhaustion *e, exhaustion_sample_fn fn, void *ctx);

/* Percentile pct (nearest rank) of the calls counted in now and not in
 * prev (both cumulative, EXH_LAT_BUCKETS long; prev may be NULL): the
 * latency between two samples. 0 when there were none; *n gets how many. */
__u64 exhaustion__lat_pct(const __u32 *now, const __u32 *prev, unsigned int pct,
			  unsigned long long *n);

/* porttrace exhaustion FILE... and porttrace top. */
int exhaustion__main(int argc, char **argv);
int top__main(int argc, char **argv);

#endif /* PT_EXHAUSTION_H */
