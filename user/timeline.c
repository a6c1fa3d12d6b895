// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <argp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "addr.h"
#include "array.h"
#include "escape.h"
#include "json.h"
#include "log.h"
#include "logreader.h"
#include "hist.h"
#include "cgroup.h"
#include "names.h"
#include "options.h"
#include "output.h"
#include "pipeline.h"
#include "socktab.h"
#include "timeline.h"

#define TL_STATES 8
/* A process that held nothing for this long (event time) is retired: its
 * timeline, summary and detail as kept, goes to a spill file until printed. */
#define TL_RETIRE_NS (60ULL * 1000000000ULL)
#define MAX_FAIL_KINDS 8

enum tl_how {
	HOW_CONNECT = 1,	/* TCP connect() autobind */
	HOW_BIND,		/* bind() to a chosen port */
	HOW_BIND0,		/* bind(addr, 0) */
	HOW_UDP,		/* UDP autobind at sendto()/sendmsg()/connect() */
	HOW_LISTEN,		/* listen() on an unbound socket */
	HOW_EXISTING,		/* held when tracing began */
	HOW_FAILED,		/* an allocation that failed: no port */
};

static const char *const how_names[] = {
	[HOW_CONNECT] = "connect-autobind", [HOW_BIND] = "bind",
	[HOW_BIND0] = "bind(0)",	    [HOW_UDP] = "udp-autobind",
	[HOW_LISTEN] = "listen-autobind",   [HOW_EXISTING] = "held-before-tracing",
	[HOW_FAILED] = "failed",
};

/* One port a process held (or failed to get). */
struct tl_port {
	__u64 cookie;
	__u64 taken_ns, tw_ns, released_ns;
	__u64 latency_ns;
	struct pt_sock sk;
	__s32 err;
	__u8 how, reason, nstates, states_lost;
	bool released, computed, pending, in_first;
	bool counted;		/* in taken/held: its port is known */
	size_t open_idx;	/* in its process's open ports */
	__u8 state[TL_STATES];
	__u64 state_ns[TL_STATES];
	char *held;		/* a failed bind(): what held the port */
};

static void port_free(struct tl_port *port)
{
	if (port)
		free(port->held);
	free(port);
}

struct tl_fail {
	int err;
	unsigned long n;
	__u64 first_ns, last_ns;
};

struct tl_proc {
	__u32 pid;
	__u64 start_ns;
	char comm[PT_TASK_COMM_LEN];
	__u64 cgroup;
	__u64 first_ns, last_ns;
	bool selected;
	/* exact counts */
	unsigned long taken, held, peak, time_wait, folded, failures;
	__u64 peak_ns, longest_ns;
	/* Released ports' hold times: the median within 6%, in at most
	 * about 2.4 KB however many ports. */
	struct hist holds;
	__u64 median_ns;	/* read back from the spill file: holds is gone */
	bool spilled;
	size_t spill_bytes;	/* spilled: its ports and their held texts, after it */
	unsigned int live;	/* sockets by_cookie names it for */
	size_t idx;		/* in t->procs */
	struct tl_proc *iprev, *inext;	/* t->idle: holds nothing since idle_ns */
	__u64 idle_ns;
	bool idle;
	struct tl_fail fail[MAX_FAIL_KINDS];
	int nfail;
	/* detail: first ports forever, open ones, most recent released ones */
	struct tl_port **first;
	unsigned int nfirst;
	size_t cap_first;
	struct tl_port **open;
	size_t nopen, cap_open;
	struct tl_port **recent;	/* ring of keep/2 */
	unsigned int recent_head, nrecent;
};

/* Where a live socket's hold is. */
struct tl_ref {
	struct tl_port *port;
	struct tl_proc *proc;
};

struct timeline {
	struct timeline_opts o;
	unsigned int half;		/* keep / 2 */
	struct tl_proc **procs;
	size_t nprocs, cap_procs;
	struct socktab *by_cookie;	/* cookie -> struct tl_ref */
	struct socktab *by_pid;		/* pid -> latest struct tl_proc * */
	struct tl_proc *idle_head, *idle_tail;	/* by idle_ns */
	FILE *spill;			/* retired timelines, in retirement order */
	struct tl_proc back;		/* the one timeline__each_life() read back last */
	unsigned long long spilled;
	unsigned long long lost;
	int err;			/* out of memory while ingesting */
	struct cgroups *cg;		/* names for cgroup ids; NULL: none */
};

void timeline__set_names(struct timeline *t, struct cgroups *cg)
{
	t->cg = cg;
}

struct timeline *timeline__new(const struct timeline_opts *o)
{
	struct timeline *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->o = *o;
	if (!t->o.keep)
		t->o.keep = PT_TIMELINE_KEEP;
	t->half = (t->o.keep + 1) / 2;
	t->by_cookie = socktab__new(1u << 24, sizeof(struct tl_ref));
	t->by_pid = socktab__new(1u << 22, sizeof(struct tl_proc *));
	if (!t->by_cookie || !t->by_pid) {
		timeline__free(t);
		return NULL;
	}
	return t;
}

static void proc_free(struct tl_proc *p)
{
	for (unsigned int i = 0; i < p->nfirst; i++)
		port_free(p->first[i]);
	for (size_t i = 0; i < p->nopen; i++)
		port_free(p->open[i]);
	for (unsigned int i = 0; i < p->nrecent; i++)
		port_free(p->recent[i]);
	free(p->first);
	free(p->open);
	free(p->recent);
	hist__free(&p->holds);
	free(p);
}

void timeline__free(struct timeline *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nprocs; i++)
		proc_free(t->procs[i]);
	free(t->procs);
	socktab__free(t->by_cookie);
	socktab__free(t->by_pid);
	if (t->spill)
		fclose(t->spill);
	free(t->back.first);	/* see spill_done() */
	free(t);
}

static bool wanted(const struct timeline *t, __u32 pid, const char *comm)
{
	bool by_pid = !t->o.n_pids, by_comm = !t->o.n_comms;

	for (int i = 0; i < t->o.n_pids && !by_pid; i++)
		by_pid = t->o.pids[i] == pid;
	for (int i = 0; i < t->o.n_comms && !by_comm; i++)
		by_comm = !strncmp(t->o.comms[i], comm, PT_TASK_COMM_LEN - 1);
	return by_pid && by_comm;
}

static void idle_add(struct timeline *t, struct tl_proc *p, __u64 ts)
{
	p->idle = true;
	p->idle_ns = ts;
	p->inext = NULL;
	p->iprev = t->idle_tail;
	if (t->idle_tail)
		t->idle_tail->inext = p;
	else
		t->idle_head = p;
	t->idle_tail = p;
}

static void idle_del(struct timeline *t, struct tl_proc *p)
{
	if (!p->idle)
		return;
	if (p->iprev)
		p->iprev->inext = p->inext;
	else
		t->idle_head = p->inext;
	if (p->inext)
		p->inext->iprev = p->iprev;
	else
		t->idle_tail = p->iprev;
	p->idle = false;
}

static void ref_hold(struct timeline *t, struct tl_proc *p)
{
	if (!p->live++)
		idle_del(t, p);
}

static void ref_drop(struct timeline *t, struct tl_proc *p, __u64 ts)
{
	if (!--p->live)
		idle_add(t, p, ts);
}

/* The timeline of the process that owns ev; a reused pid starts anew. */
static struct tl_proc *proc_of(struct timeline *t, const struct pt_event *ev)
{
	struct tl_proc **slot, **procs, *p;

	if (!(ev->flags & PT_F_OWNER_KNOWN) || !ev->owner.pid)
		return NULL;
	slot = socktab__get(t->by_pid, ev->owner.pid);
	if (slot && pt_owner_same_start((*slot)->start_ns, ev->owner.start_ns)) {
		p = *slot;
		if (!p->start_ns)
			p->start_ns = ev->owner.start_ns;
		return p->selected ? p : NULL;
	}
	p = calloc(1, sizeof(*p));
	procs = array__grow(t->procs, &t->cap_procs, t->nprocs + 1, sizeof(*t->procs));
	if (!p || !procs) {
		free(p);
		t->err = -ENOMEM;
		return NULL;
	}
	t->procs = procs;
	p->pid = ev->owner.pid;
	p->start_ns = ev->owner.start_ns;
	memcpy(p->comm, ev->owner.comm, sizeof(p->comm));
	p->cgroup = ev->owner.cgroup_id;
	p->first_ns = p->last_ns = ev->ts_ns;
	p->selected = wanted(t, p->pid, p->comm);
	/* A process the filters leave out is remembered only so that its
	 * events are recognised: it keeps no ports. Those it keeps grow
	 * their arrays as they need: most processes take a port or two. */
	p->idx = t->nprocs;
	t->procs[t->nprocs++] = p;
	socktab__put(t->by_pid, p->pid, &p);
	idle_add(t, p, ev->ts_ns);
	return p->selected ? p : NULL;
}

static void touch(struct timeline *t, struct tl_proc *p, __u64 ts)
{
	if (p->idle && ts > p->idle_ns) {
		idle_del(t, p);
		idle_add(t, p, ts);
	}
	if (ts < p->first_ns)
		p->first_ns = ts;
	if (ts > p->last_ns)
		p->last_ns = ts;
}

/* States in time order, whichever CPU's record came first. */
static void add_state(struct tl_port *port, __u8 state, __u64 ts)
{
	int i;

	if (port->nstates == TL_STATES) {
		port->states_lost++;
		return;
	}
	for (i = port->nstates; i > 0 && port->state_ns[i - 1] > ts; i--) {
		port->state[i] = port->state[i - 1];
		port->state_ns[i] = port->state_ns[i - 1];
	}
	port->state[i] = state;
	port->state_ns[i] = ts;
	port->nstates++;
}

/* Keep a port in detail: among the first ones, or with the open ones. */
static struct tl_port *port_new(struct timeline *t, struct tl_proc *p, const struct pt_event *ev,
				enum tl_how how)
{
	struct tl_port *port = calloc(1, sizeof(*port));

	if (!port) {
		t->err = -ENOMEM;
		return NULL;
	}
	port->cookie = ev->sk.cookie;
	port->taken_ns = ev->ts_ns;
	port->sk = ev->sk;
	port->how = how;
	port->pending = !pt_event_port_known(ev);
	if (p->nfirst < t->half) {
		struct tl_port **first = array__grow(p->first, &p->cap_first, p->nfirst + 1,
						    sizeof(*p->first));

		if (!first) {
			free(port);
			t->err = -ENOMEM;
			return NULL;
		}
		p->first = first;
		port->in_first = true;
		p->first[p->nfirst++] = port;
	} else if (how != HOW_FAILED) {
		struct tl_port **open = array__grow(p->open, &p->cap_open, p->nopen + 1,
						   sizeof(*p->open));

		if (!open) {
			free(port);
			t->err = -ENOMEM;
			return NULL;
		}
		p->open = open;
		port->open_idx = p->nopen;
		p->open[p->nopen++] = port;
	}
	return port;
}

/* A released (or failed) port leaves the open set for the recent ring;
 * what falls out of the ring is folded into the counts. */
static void port_retire(struct timeline *t, struct tl_proc *p, struct tl_port *port)
{
	unsigned int slot;

	if (port->in_first)
		return;
	if (port->open_idx < p->nopen && p->open[port->open_idx] == port) {
		p->open[port->open_idx] = p->open[--p->nopen];
		p->open[port->open_idx]->open_idx = port->open_idx;
	}
	if (!p->recent && !(p->recent = calloc(t->half, sizeof(*p->recent)))) {
		t->err = -ENOMEM;
		free(port);
		return;
	}
	slot = (p->recent_head + p->nrecent) % t->half;
	if (p->nrecent == t->half) {
		port_free(p->recent[p->recent_head]);
		p->recent_head = (p->recent_head + 1) % t->half;
		p->folded++;
	} else {
		p->nrecent++;
	}
	p->recent[slot] = port;
}

/* A port counts as taken, and held, once it is known: a connect() that
 * finds none took nothing. */
static void count(struct tl_proc *p, struct tl_port *port, __u64 ts)
{
	port->counted = true;
	p->taken++;
	if (++p->held > p->peak) {
		p->peak = p->held;
		p->peak_ns = ts;
	}
}

static void take(struct timeline *t, struct tl_proc *p, const struct pt_event *ev, enum tl_how how)
{
	struct tl_port *port = port_new(t, p, ev, how);
	struct tl_ref ref = {port, p}, *old;

	if (!port)
		return;
	if (!port->pending)
		count(p, port, ev->ts_ns);
	if (ev->type == PT_EV_STATE)
		add_state(port, ev->newstate, ev->ts_ns);
	else if (how == HOW_EXISTING && ev->sk.proto == IPPROTO_TCP)
		add_state(port, ev->newstate, ev->ts_ns);
	port->latency_ns = ev->latency_ns;
	if (!ev->sk.cookie)
		return;
	/* A socket that takes a port again: its old entry names it no more. */
	if ((old = socktab__get(t->by_cookie, ev->sk.cookie)))
		ref_drop(t, old->proc, ev->ts_ns);
	if (socktab__put(t->by_cookie, ev->sk.cookie, &ref))
		ref_hold(t, p);
	else
		t->err = -ENOMEM;
}

static void release(struct timeline *t, struct tl_ref *ref, const struct pt_event *ev)
{
	struct tl_port *port = ref->port;
	struct tl_proc *p = ref->proc;
	__u64 held = ev->ts_ns > port->taken_ns ? ev->ts_ns - port->taken_ns : 0;

	port->released = true;
	port->released_ns = ev->ts_ns;
	port->reason = ev->reason;
	port->computed = ev->flags & PT_F_COMPUTED;
	if (port->counted)
		p->held--;
	if (held > p->longest_ns)
		p->longest_ns = held;
	if (hist__add(&p->holds, held))
		t->err = -ENOMEM;
	if (socktab__take(t->by_cookie, port->cookie, NULL))
		ref_drop(t, p, ev->ts_ns);
	port_retire(t, p, port);
}

/* An allocation that failed with err at ts: counted, and port (if kept in
 * detail) shows it. */
static void failed(struct timeline *t, struct tl_proc *p, struct tl_port *port, int err, __u64 ts,
		   __u64 latency_ns)
{
	int i;

	p->failures++;
	for (i = 0; i < p->nfail && p->fail[i].err != err; i++)
		;
	if (i == p->nfail && p->nfail < MAX_FAIL_KINDS)
		p->fail[p->nfail++] = (struct tl_fail){.err = err, .first_ns = ts};
	if (i < p->nfail) {
		p->fail[i].n++;
		p->fail[i].last_ns = ts;
	}
	if (!port)
		return;
	port->how = HOW_FAILED;
	port->err = err;
	port->released = true;
	port->released_ns = ts;
	port->latency_ns = latency_ns;
	port_retire(t, p, port);
}

/* The connect() that ref follows failed without a port: its entry becomes
 * the failure, instead of a port held forever beside a second entry. */
static void connect_failed(struct timeline *t, const struct tl_ref *ref, int err, __u64 ts,
			   __u64 latency_ns)
{
	__u64 cookie = ref->port->cookie;
	struct tl_proc *p = ref->proc;

	failed(t, p, ref->port, err, ts, latency_ns);
	if (socktab__take(t->by_cookie, cookie, NULL))
		ref_drop(t, p, ts);
}

static bool connecting_without_port(const struct tl_port *port)
{
	return port->how == HOW_CONNECT && !port->counted;
}

static void fail(struct timeline *t, struct tl_proc *p, const struct pt_event *ev)
{
	struct tl_port *port = port_new(t, p, ev, HOW_FAILED);
	char held[256];

	if (port && (ev->flags & PT_F_HELD) && ev->held) {
		output__held_text(held, sizeof(held), ev->held, ev->ts_ns);
		port->held = strdup(held);
	}
	failed(t, p, port, ev->err, ev->ts_ns, ev->latency_ns);
}

/* Fill in what an earlier record of the socket could not know yet. */
static void learn(struct tl_ref *ref, const struct pt_event *ev)
{
	struct tl_port *port = ref->port;

	if (port->pending && pt_event_port_known(ev)) {
		port->sk = ev->sk;
		port->pending = false;
	}
	if (!port->counted && !port->pending && port->how != HOW_FAILED)
		count(ref->proc, port, ev->ts_ns);
	if (!port->sk.rport && ev->sk.rport) {
		port->sk.rport = ev->sk.rport;
		memcpy(port->sk.raddr, ev->sk.raddr, sizeof(port->sk.raddr));
	}
	if (!port->sk.range_hi && ev->sk.range_hi) {
		port->sk.range_lo = ev->sk.range_lo;
		port->sk.range_hi = ev->sk.range_hi;
	}
}

static void on_port(struct timeline *t, struct tl_proc *p, struct tl_ref *ref,
		    const struct pt_event *ev)
{
	switch (ev->kind) {
	case PT_PORT_ALLOC:
	case PT_PORT_CONNECT:
		if (ref)
			ref->port->latency_ns = ev->latency_ns;
		else if (p && ev->kind == PT_PORT_ALLOC) {
			take(t, p, ev, ev->sk.proto == IPPROTO_UDP ? HOW_UDP : HOW_CONNECT);
		}
		break;
	case PT_PORT_BIND:
		if (!ref && p)
			take(t, p, ev, ev->req_port ? HOW_BIND : HOW_BIND0);
		break;
	case PT_PORT_LISTEN:
		if (!ref && p)
			take(t, p, ev, HOW_LISTEN);
		break;
	case PT_PORT_EXISTING:
		if (!ref && p)
			take(t, p, ev, HOW_EXISTING);
		break;
	case PT_PORT_TIMEWAIT:
		if (ref) {
			ref->port->tw_ns = ev->ts_ns;
			if (ref->proc)
				ref->proc->time_wait++;
		}
		break;
	case PT_PORT_RELEASE:
		if (ref)
			release(t, ref, ev);
		break;
	case PT_PORT_ALLOC_FAIL:
		if (ref && connecting_without_port(ref->port))
			connect_failed(t, ref, ev->err, ev->ts_ns, ev->latency_ns);
		else if (p)
			fail(t, p, ev);
		break;
	case PT_PORT_BIND_FAIL:
		if (p)
			fail(t, p, ev);
		break;
	default:
		break;
	}
}

static void retire_due(struct timeline *t, __u64 ts);

int timeline__event(void *ctx, const struct pt_event *ev)
{
	struct timeline *t = ctx;
	struct tl_ref *found, ref;
	struct tl_proc *p;

	if (ev->type == PT_EV_LOST) {
		t->lost += ev->lost;
		return 0;
	}
	retire_due(t, ev->ts_ns);
	p = proc_of(t, ev);
	found = socktab__get(t->by_cookie, ev->sk.cookie);
	/* Copied: take() and release() may move the table's entries. */
	if (found)
		ref = *found;
	if (found) {
		touch(t, ref.proc, ev->ts_ns);
		learn(&ref, ev);
	} else if (p) {
		touch(t, p, ev->ts_ns);
	}

	if (ev->type == PT_EV_STATE) {
		if (found) {
			/* A CLOSE without a port waits for the alloc-fail
			 * the decoder sends, from the kernel or computed. */
			add_state(ref.port, ev->newstate, ev->ts_ns);
		} else if (p && ev->oldstate == TCP_CLOSE && ev->newstate == TCP_SYN_SENT) {
			/* The port is picked right after this transition. */
			take(t, p, ev, HOW_CONNECT);
		}
		return 0;
	}
	on_port(t, p, found ? &ref : NULL, ev);
	return 0;
}

/* ---- printing ---- */

/* buf: ADDR_STRLEN bytes. */
static const char *fmt_endpoint(__u8 family, const __u8 *addr, __u16 port, char *buf)
{
	return port ? addr__str_port(buf, family, addr, port) : strcpy(buf, "-");
}

static __u64 median(const struct tl_proc *p)
{
	return p->spilled ? p->median_ns : hist__pct(&p->holds, 50);
}

static int cmp_taken(const void *a, const void *b)
{
	const struct tl_port *x = *(struct tl_port *const *)a, *y = *(struct tl_port *const *)b;

	return x->taken_ns < y->taken_ns ? -1 : x->taken_ns > y->taken_ns;
}

/* Every port kept in detail, in the order they were taken. */
static struct tl_port **ports_sorted(const struct timeline *t, struct tl_proc *p, size_t *n)
{
	size_t k = 0, total = p->nfirst + p->nopen + p->nrecent;
	struct tl_port **v = malloc((total ? total : 1) * sizeof(*v));

	if (!v)
		return NULL;
	for (unsigned int i = 0; i < p->nfirst; i++)
		v[k++] = p->first[i];
	for (size_t i = 0; i < p->nopen; i++)
		v[k++] = p->open[i];
	for (unsigned int i = 0; i < p->nrecent; i++)
		v[k++] = p->recent[(p->recent_head + i) % t->half];
	qsort(v, k, sizeof(*v), cmp_taken);
	*n = k;
	return v;
}

/* One line of a text timeline: when, which port, what happened. */
struct tl_line {
	__u64 ts;
	const struct tl_port *port;
	int what;		/* -1 taken, -2 time-wait, -3 released, >=0 state index */
};

/* At equal times a port is taken, then changes state, then is given up. */
static int line_rank(int what)
{
	return what == -1 ? -1 : what >= 0 ? what : 1000 - what;
}

static int cmp_line(const void *a, const void *b)
{
	const struct tl_line *x = a, *y = b;
	int rx = line_rank(x->what), ry = line_rank(y->what);

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->port != y->port)
		return x->port->taken_ns < y->port->taken_ns ? -1 : 1;
	return rx < ry ? -1 : rx > ry;
}

static void print_line(FILE *f, const struct tl_line *l, __u64 base_ns)
{
	const struct tl_port *port = l->port;
	char ep[ADDR_STRLEN], d[32], e[16];
	const char *err;

	char num[8] = "-";

	if (!port->pending && port->sk.lport)
		snprintf(num, sizeof(num), "%u", port->sk.lport);
	fprintf(f, "  %10.6f  %s%c %-6s", (double)(long long)(l->ts - base_ns) / 1e9,
		names__proto(port->sk.proto), port->sk.family == AF_INET6 ? '6' : '4', num);
	switch (l->what) {
	case -1:
		fprintf(f, " %-22s ",
			fmt_endpoint(port->sk.family, port->sk.raddr, port->sk.rport, ep));
		if (port->how == HOW_FAILED) {
			err = names__errno(port->err, e, sizeof(e));
			fprintf(f, "FAILED %s", err ? err : "");
			if (port->held)
				fprintf(f, " held by: %s", port->held);
		} else {
			fprintf(f, "%s", how_names[port->how]);
		}
		if (port->latency_ns)
			fprintf(f, " %s", names__duration(port->latency_ns, d, sizeof(d)));
		if (!port->released && !port->counted)
			fprintf(f, " [no port yet at end]");
		else if (!port->released)
			fprintf(f, port->tw_ns ? " [TIME_WAIT at end]" : " [held at end]");
		break;
	case -2:
		fprintf(f, " %-22s TIME_WAIT hold", "");
		break;
	case -3:
		fprintf(f, " %-22s released: %s%s, held %s", "", names__reason(port->reason),
			port->computed ? " (computed)" : "",
			names__duration(port->released_ns - port->taken_ns, d, sizeof(d)));
		break;
	default:
		fprintf(f, " %-22s %s", "", names__tcp_state(port->state[l->what]));
		if (l->what > 0)
			fprintf(f, " (after %s in %s)",
				names__duration(port->state_ns[l->what] - port->state_ns[l->what - 1], d,
					sizeof(d)),
				names__tcp_state(port->state[l->what - 1]));
		break;
	}
	fputc('\n', f);
}

static void print_ports_text(FILE *f, struct tl_port **v, size_t n, __u64 base_ns)
{
	size_t cap = 0, k = 0;
	struct tl_line *lines = NULL;

	for (size_t i = 0; i < n; i++)
		cap += 3 + v[i]->nstates;
	lines = malloc((cap ? cap : 1) * sizeof(*lines));
	if (!lines)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct tl_port *port = v[i];

		lines[k++] = (struct tl_line){port->taken_ns, port, -1};
		if (port->how == HOW_FAILED)
			continue;
		for (int s = 0; s < port->nstates; s++)
			lines[k++] = (struct tl_line){port->state_ns[s], port, s};
		if (port->tw_ns)
			lines[k++] = (struct tl_line){port->tw_ns, port, -2};
		if (port->released)
			lines[k++] = (struct tl_line){port->released_ns, port, -3};
	}
	qsort(lines, k, sizeof(*lines), cmp_line);
	for (size_t i = 0; i < k; i++)
		print_line(f, &lines[i], base_ns);
	free(lines);
}

static void print_proc_text(struct timeline *t, FILE *f, struct tl_proc *p, __u64 base_ns)
{
	char d1[32], d2[32], e[16], comm[ESCAPE_TEXT_LEN(PT_TASK_COMM_LEN)];
	struct tl_port **v;
	size_t n;
	unsigned int show = PT_TIMELINE_SHOW;

	const struct cgroup_ident *id = cgroups__lookup(t->cg, p->cgroup);
	char name[ESCAPE_TEXT_LEN(sizeof(id->name))];

	fprintf(f, "PID %u (%s)  cgroup %llu%s%s%s  seen %.6f .. %.6f\n", p->pid,
		escape__text(comm, p->comm, sizeof(p->comm)), (unsigned long long)p->cgroup,
		id && id->name[0] ? " [" : "", id ? escape__text(name, id->name, sizeof(id->name)) : "",
		id && id->name[0] ? "]" : "", (double)(long long)(p->first_ns - base_ns) / 1e9,
		(double)(long long)(p->last_ns - base_ns) / 1e9);
	fprintf(f, "  ports taken %lu, peak %lu held at once", p->taken, p->peak);
	if (p->peak)
		fprintf(f, " (at %.6f)", (double)(long long)(p->peak_ns - base_ns) / 1e9);
	fprintf(f, ", longest hold %s, median hold %s\n", names__duration(p->longest_ns, d1, sizeof(d1)),
		names__duration(median(p), d2, sizeof(d2)));
	fprintf(f, "  still held %lu, ended in TIME_WAIT %lu, failures %lu", p->held, p->time_wait,
		p->failures);
	for (int i = 0; i < p->nfail; i++) {
		const char *err = names__errno(p->fail[i].err, e, sizeof(e));

		fprintf(f, "%s%s=%lu", i ? " " : " (", err ? err : "?", p->fail[i].n);
	}
	fprintf(f, "%s\n", p->nfail ? ")" : "");

	v = ports_sorted(t, p, &n);
	if (!v)
		return;
	if (t->o.all || n <= 2 * show) {
		print_ports_text(f, v, n, base_ns);
		if (p->folded)
			fprintf(f, "  ... %lu earlier released ports folded into the counts\n",
				p->folded);
	} else {
		print_ports_text(f, v, show, base_ns);
		fprintf(f, "  ... %zu ports not shown (--all shows them), %lu folded into the counts ...\n",
			n - 2 * show, p->folded);
		print_ports_text(f, v + n - show, show, base_ns);
	}
	fputc('\n', f);
	free(v);
}

static void print_port_json(struct json *j, const struct tl_port *port)
{
	char a[INET6_ADDRSTRLEN], e[16];
	const char *err;

	json__printf(j, "{\"how\":\"%s\",\"proto\":\"%s\",\"family\":%d,\"cookie\":%llu,",
		     how_names[port->how], names__proto(port->sk.proto),
		     port->sk.family == AF_INET6 ? 6 : 4, (unsigned long long)port->cookie);
	json__printf(j, "\"laddr\":\"%s\",\"lport\":", addr__str(a, port->sk.family, port->sk.laddr));
	if (port->pending)
		json__printf(j, "null");
	else
		json__printf(j, "%u", port->sk.lport);
	json__printf(j, ",\"raddr\":\"%s\",\"rport\":%u,\"taken_ns\":%llu,\"latency_ns\":%llu",
		     addr__str(a, port->sk.family, port->sk.raddr), port->sk.rport,
		     (unsigned long long)port->taken_ns, (unsigned long long)port->latency_ns);
	if (port->how == HOW_FAILED) {
		err = names__errno(port->err, e, sizeof(e));
		json__printf(j, ",\"err\":\"%s\"", err ? err : "");
		if (port->held) {
			json__printf(j, ",\"held_by\":");
			json__string(j, port->held, 256);
		}
		json__printf(j, "}");
		return;
	}
	json__printf(j, ",\"states\":[");
	for (int s = 0; s < port->nstates; s++)
		json__printf(j, "%s[\"%s\",%llu]", s ? "," : "", names__tcp_state(port->state[s]),
			     (unsigned long long)port->state_ns[s]);
	json__printf(j, "]");
	if (port->tw_ns)
		json__printf(j, ",\"time_wait_ns\":%llu", (unsigned long long)port->tw_ns);
	if (port->released)
		json__printf(j, ",\"released_ns\":%llu,\"reason\":\"%s\",\"computed\":%s",
			     (unsigned long long)port->released_ns, names__reason(port->reason),
			     port->computed ? "true" : "false");
	json__printf(j, "}");
}

/* ,"unit", "container", "runtime", "pod" members, where known. */
static void print_ident_json(const struct timeline *t, struct json *j, __u64 cgroup)
{
	const struct cgroup_ident *id = cgroups__lookup(t->cg, cgroup);
	const struct {
		const char *key, *val;
		size_t max;
	} v[] = {
		{"unit", id ? id->unit : "", sizeof(id->unit)},
		{"container", id ? id->container : "", sizeof(id->container)},
		{"runtime", id ? id->runtime : "", sizeof(id->runtime)},
		{"pod", id ? id->pod : "", sizeof(id->pod)},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (!v[i].val[0])
			continue;
		json__printf(j, ",\"%s\":", v[i].key);
		json__string(j, v[i].val, v[i].max);
	}
}

/* One process's object, built whole and then written: a process with
 * many ports is one line either way. */
static void print_proc_json(const struct timeline *t, FILE *f, struct tl_proc *p)
{
	struct json j;
	struct tl_port **v;
	char e[16];
	size_t n;

	if (json__growing(&j, 4096)) {
		p_warn("the timeline of pid %u is left out: out of memory", p->pid);
		return;
	}
	json__printf(&j, "{\"type\":\"timeline\",\"pid\":%u,\"pstart_ns\":%llu,\"comm\":", p->pid,
		     (unsigned long long)p->start_ns);
	json__string(&j, p->comm, PT_TASK_COMM_LEN);
	print_ident_json(t, &j, p->cgroup);
	json__printf(&j, ",\"cgroup\":%llu,\"first_ns\":%llu,\"last_ns\":%llu,\"taken\":%lu,"
			 "\"held\":%lu,\"peak\":%lu,\"peak_ns\":%llu,\"longest_ns\":%llu,"
			 "\"median_ns\":%llu,\"time_wait\":%lu,\"folded\":%lu,\"failures\":{",
		     (unsigned long long)p->cgroup, (unsigned long long)p->first_ns,
		     (unsigned long long)p->last_ns, p->taken, p->held, p->peak,
		     (unsigned long long)p->peak_ns, (unsigned long long)p->longest_ns,
		     (unsigned long long)median(p), p->time_wait, p->folded);
	for (int i = 0; i < p->nfail; i++) {
		const char *err = names__errno(p->fail[i].err, e, sizeof(e));

		json__printf(&j, "%s\"%s\":%lu", i ? "," : "", err ? err : "?", p->fail[i].n);
	}
	json__printf(&j, "},\"ports\":[");
	v = ports_sorted(t, p, &n);
	for (size_t i = 0; v && i < n; i++) {
		if (i)
			json__printf(&j, ",");
		print_port_json(&j, v[i]);
	}
	free(v);
	json__printf(&j, "]}\n");
	if (json__full(&j))
		p_warn("the timeline of pid %u is left out: out of memory", p->pid);
	else
		fwrite(json__buf(&j), 1, json__len(&j), f);
	json__free(&j);
}

/* ---- retirement: what nothing holds leaves memory ---- */

static void proc_unlink(struct timeline *t, struct tl_proc *p)
{
	struct tl_proc **slot = socktab__get(t->by_pid, p->pid);

	if (slot && *slot == p)
		socktab__take(t->by_pid, p->pid, NULL);
	idle_del(t, p);
	t->procs[p->idx] = t->procs[--t->nprocs];
	t->procs[p->idx]->idx = p->idx;
}

/*
 * A spill record: the struct tl_proc (its pointers meaningless there, its
 * median computed), then its nfirst ports in the order they were taken,
 * then the text of what held each port that has one, each ending in a NUL.
 * A port's held is written as 0 (none) or 1 (its text follows).
 */
static bool spill(struct timeline *t, struct tl_proc *p)
{
	struct tl_proc copy = *p;
	struct tl_port **v, port;
	size_t n;
	bool ok;

	if (!t->spill && !(t->spill = tmpfile()))
		return false;
	v = ports_sorted(t, p, &n);
	if (!v)
		return false;
	copy.median_ns = median(p);
	copy.spilled = true;
	memset(&copy.holds, 0, sizeof(copy.holds));
	copy.first = copy.open = copy.recent = NULL;
	copy.iprev = copy.inext = NULL;
	copy.nfirst = n;
	copy.nopen = copy.nrecent = 0;
	copy.spill_bytes = n * sizeof(port);
	for (size_t i = 0; i < n; i++)
		copy.spill_bytes += v[i]->held ? strlen(v[i]->held) + 1 : 0;
	ok = fwrite(&copy, sizeof(copy), 1, t->spill) == 1;
	for (size_t i = 0; ok && i < n; i++) {
		port = *v[i];
		port.held = port.held ? (char *)1 : NULL;
		ok = fwrite(&port, sizeof(port), 1, t->spill) == 1;
	}
	for (size_t i = 0; ok && i < n; i++)
		if (v[i]->held)
			ok = fwrite(v[i]->held, strlen(v[i]->held) + 1, 1, t->spill) == 1;
	free(v);
	if (!ok)
		t->err = -EIO;
	t->spilled += ok;
	return ok;
}

/* Held nothing for TL_RETIRE_NS: the timeline is written to the spill file
 * (if it has anything to show) and leaves memory. Without a spill file it
 * stays in memory, no longer waiting. */
static void retire(struct timeline *t, struct tl_proc *p)
{
	if (p->selected && (p->taken || p->failures) && !spill(t, p)) {
		idle_del(t, p);
		return;
	}
	proc_unlink(t, p);
	proc_free(p);
}

static void retire_due(struct timeline *t, __u64 ts)
{
	while (t->idle_head && t->idle_head->idle_ns + TL_RETIRE_NS <= ts)
		retire(t, t->idle_head);
}

size_t timeline__procs(const struct timeline *t)
{
	return t->nprocs;
}

static void print_proc(struct timeline *t, FILE *f, struct tl_proc *p, enum output_format fmt,
		       __u64 base_ns)
{
	if (fmt == OUTPUT_JSON)
		print_proc_json(t, f, p);
	else
		print_proc_text(t, f, p, base_ns);
}

/* A spill record's length. */
static long spill_len(const struct tl_proc *p)
{
	return sizeof(*p) + p->spill_bytes;
}

/*
 * The retired timeline at off into *p, p->first pointing at its ports in
 * the order they were taken, their held texts with them, all in one block
 * (free with spill_done()); false at the end of the file or on an error.
 * The spill file is left at its end, where the next retirement writes.
 */
static bool spill_read(struct timeline *t, long off, struct tl_proc *p)
{
	bool ok = t->spill && !fflush(t->spill) && !fseek(t->spill, off, SEEK_SET) &&
		  fread(p, sizeof(*p), 1, t->spill) == 1;
	size_t ptrs = ok ? p->nfirst * sizeof(*p->first) : 0;
	struct tl_port *ports;
	char *text, *end;

	p->first = NULL;
	/* One block: the pointers, then the ports and texts they point at. */
	if (ok && (p->first = malloc(ptrs + p->spill_bytes + 1))) {
		ports = (struct tl_port *)((char *)p->first + ptrs);
		text = (char *)(ports + p->nfirst);
		end = (char *)ports + p->spill_bytes;
		ok = fread(ports, p->spill_bytes, 1, t->spill) == 1 || !p->spill_bytes;
		for (unsigned int i = 0; ok && i < p->nfirst; i++) {
			p->first[i] = &ports[i];
			if (!ports[i].held)
				continue;
			ok = memchr(text, '\0', end - text) != NULL;
			ports[i].held = ok ? text : NULL;
			text += ok ? strlen(text) + 1 : 0;
		}
	}
	if (!ok || !p->first) {
		free(p->first);
		p->first = NULL;
		ok = false;
	}
	if (t->spill)
		fseek(t->spill, 0, SEEK_END);
	return ok;
}

static void spill_done(struct tl_proc *p)
{
	free(p->first);
	p->first = NULL;
}

/* The retired timelines, read back one at a time. */
static void print_spilled(struct timeline *t, FILE *f, enum output_format fmt, __u64 base_ns)
{
	struct tl_proc p;

	for (long off = 0; spill_read(t, off, &p); off += spill_len(&p)) {
		print_proc(t, f, &p, fmt, base_ns);
		spill_done(&p);
	}
}

static int cmp_proc(const void *a, const void *b)
{
	const struct tl_proc *x = *(struct tl_proc *const *)a, *y = *(struct tl_proc *const *)b;

	if (x->first_ns != y->first_ns)
		return x->first_ns < y->first_ns ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

void timeline__print(struct timeline *t, FILE *f, enum output_format fmt, __u64 base_ns)
{
	if (t->err)
		p_warn("timelines are incomplete: out of memory while building them");
	/* Every format says what the timelines may miss: JSON in a record
	 * shaped as the log's own "lost" record, first. */
	if (t->lost && fmt == OUTPUT_TEXT)
		fprintf(f, "note: %llu records were lost in the kernel; timelines may miss events\n\n",
			t->lost);
	else if (t->lost)
		fprintf(f, "{\"type\":\"lost\",\"lost_total\":%llu}\n", t->lost);
	/* Those retired first, as they were retired; then the others. */
	print_spilled(t, f, fmt, base_ns);
	qsort(t->procs, t->nprocs, sizeof(*t->procs), cmp_proc);
	for (size_t i = 0; i < t->nprocs; i++) {
		struct tl_proc *p = t->procs[i];

		t->procs[i]->idx = i;
		if (!p->selected || (!p->taken && !p->failures))
			continue;
		print_proc(t, f, p, fmt, base_ns);
	}
	fflush(f);
}

/* ---- what the timelines hold, for views ---- */

_Static_assert(MAX_FAIL_KINDS == TIMELINE_FAIL_KINDS, "timeline.h says how many kinds are kept");

static void proc_info(const struct tl_proc *p, __u64 key, struct timeline_proc_info *info)
{
	memset(info, 0, sizeof(*info));
	info->key = key;
	info->pid = p->pid;
	info->start_ns = p->start_ns;
	memcpy(info->comm, p->comm, sizeof(info->comm));
	info->cgroup = p->cgroup;
	info->first_ns = p->first_ns;
	info->last_ns = p->last_ns;
	info->taken = p->taken;
	info->held = p->held;
	info->peak = p->peak;
	info->peak_ns = p->peak_ns;
	info->time_wait = p->time_wait;
	info->folded = p->folded;
	info->failures = p->failures;
	info->nfail = p->nfail;
	for (int k = 0; k < p->nfail; k++) {
		info->fail[k].err = p->fail[k].err;
		info->fail[k].n = p->fail[k].n;
		info->fail[k].first_ns = p->fail[k].first_ns;
		info->fail[k].last_ns = p->fail[k].last_ns;
	}
}

/*
 * A process's key: in memory, its address (malloc's alignment leaves the
 * low bit 0); retired, where its record starts in the spill file, shifted
 * and with the low bit set. Both stay valid once the stream has ended, and
 * a retired process is found again without an index of every one ever
 * retired.
 */
#define SPILL_KEY(off) (((__u64)(off) << 1) | 1)

int timeline__each_proc(struct timeline *t, int (*fn)(void *ctx, const struct timeline_proc_info *p),
			void *ctx)
{
	struct timeline_proc_info info;
	struct tl_proc sp;
	long off = 0;
	int err;

	/* The retired ones first, read back one at a time, as printed. */
	if (t->spill && (fflush(t->spill) || fseek(t->spill, 0, SEEK_SET)))
		return -EIO;
	while (t->spill && fread(&sp, sizeof(sp), 1, t->spill) == 1) {
		proc_info(&sp, SPILL_KEY(off), &info);
		off += spill_len(&sp);
		if (fseek(t->spill, off, SEEK_SET)) {
			err = -EIO;
			goto out;
		}
		if ((err = fn(ctx, &info)))
			goto out;
	}
	err = 0;
out:
	if (t->spill)
		fseek(t->spill, 0, SEEK_END);
	for (size_t i = 0; i < t->nprocs && !err; i++) {
		const struct tl_proc *p = t->procs[i];

		if (!p->selected || (!p->taken && !p->failures))
			continue;
		proc_info(p, (uintptr_t)p, &info);
		err = fn(ctx, &info);
	}
	return err;
}

int timeline__each_life(struct timeline *t, __u64 key,
			int (*fn)(void *ctx, const struct timeline_life *l), void *ctx)
{
	struct tl_proc *p = (struct tl_proc *)(uintptr_t)key;
	bool spilled = key & 1;
	struct tl_port **v;
	size_t n;
	int err = 0;

	/* A retired one is read back, and kept until the next call: the
	 * lives point into it. */
	spill_done(&t->back);
	if (spilled) {
		if (!spill_read(t, key >> 1, &t->back))
			return -EIO;
		v = t->back.first;
		n = t->back.nfirst;
	} else if (!(v = ports_sorted(t, p, &n))) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && !err; i++) {
		const struct tl_port *port = v[i];
		struct timeline_life l = {
			.sk = port->sk,
			.how = how_names[port->how],
			.failed = port->how == HOW_FAILED,
			.released = port->released,
			.computed = port->computed,
			.err = port->err,
			.reason = port->reason,
			.taken_ns = port->taken_ns,
			.tw_ns = port->tw_ns,
			.released_ns = port->released ? port->released_ns : 0,
			.latency_ns = port->latency_ns,
			.nstates = port->nstates,
			.state = port->state,
			.state_ns = port->state_ns,
		};

		if (port->pending || l.failed)
			l.sk.lport = 0;
		err = fn(ctx, &l);
	}
	if (!spilled)
		free(v);
	return err;
}

/* ---- porttrace timeline FILE ---- */

struct tl_args {
	__u32 pids[PT_MAX_PIDS];
	char *comms[PT_MAX_PIDS];
	struct timeline_opts o;
	enum output_format fmt;
	char **files;
	int nfiles;
};

static const struct argp_option tl_options[] = {
	{"pid", 'p', "PID", 0, "Only this process (repeatable)", 0},
	{"comm", 'c', "COMM", 0, "Only processes with this name (repeatable)", 0},
	{"format", 'f', "FMT", 0, "text (default) or json (one object per process)", 0},
	{"all", 'a', NULL, 0, "Print every port kept, without summarising", 0},
	{"keep", 'k', "N", 0, "Released ports kept in detail per process (default 200)", 0},
	{},
};

static error_t tl_parse(int key, char *arg, struct argp_state *state)
{
	struct tl_args *a = state->input;
	unsigned long v;

	switch (key) {
	case 'p':
		if (options__parse_ulong(arg, 1, 4194304, &v) || a->o.n_pids >= PT_MAX_PIDS)
			argp_error(state, "invalid PID '%s': expected 1..4194304", arg);
		a->pids[a->o.n_pids++] = v;
		break;
	case 'c':
		if (a->o.n_comms >= PT_MAX_PIDS || !*arg)
			argp_error(state, "invalid COMM '%s'", arg);
		a->comms[a->o.n_comms++] = arg;
		break;
	case 'f':
		if (output__parse_format(arg, &a->fmt) || a->fmt == OUTPUT_CSV)
			argp_error(state, "invalid format '%s': expected text or json", arg);
		break;
	case 'a':
		a->o.all = true;
		break;
	case 'k':
		if (options__parse_ulong(arg, 2, 1000000, &v))
			argp_error(state, "invalid --keep '%s': expected 2..1000000", arg);
		a->o.keep = v;
		break;
	default:
		if (!options__files(key, state, &a->files, &a->nfiles))
			return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int timeline__main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = tl_options,
		.parser = tl_parse,
		.args_doc = "FILE...",
		.doc = "Per-process port timelines from porttrace JSON logs (-o FILE --format json),\n"
		       "rotated and compressed pieces included.\v"
		       "Example:\n  porttrace timeline /var/log/porttrace.jsonl --comm curl",
	};
	struct tl_args a = {.fmt = OUTPUT_TEXT};
	struct logreader *r = NULL;
	struct timeline *t = NULL;
	struct pipeline *pipe = NULL;
	int ret = 1;

	a.o.pids = a.pids;
	a.o.comms = a.comms;
	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, &a);

	r = logreader__new();
	t = timeline__new(&a.o);
	if (t)
		pipe = pipeline__new(&(struct pipeline_opts){.tl = t});
	if (!r || !pipe) {
		p_err("out of memory");
		goto cleanup;
	}
	/* The log holds the derived events already: nothing is derived again. */
	if (logreader__read_all(r, a.files, a.nfiles, pipeline__event, pipe) < 0)
		goto cleanup;
	pipeline__end(pipe, 0);
	timeline__print(t, stdout, a.fmt, logreader__start_mono_ns(r));
	ret = 0;
cleanup:
	pipeline__free(pipe);
	timeline__free(t);
	logreader__free(r);
	return ret;
}
