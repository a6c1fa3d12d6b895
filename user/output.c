// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The formatters append to one buffer through json.c's appenders (numbers,
 * escaped strings) and addr.c (addresses, IPv4 by hand): at tens of
 * thousands of events a second, printf() and inet_ntop() were most of
 * porttrace's user-space time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "addr.h"
#include "cgroup.h"
#include "escape.h"
#include "json.h"
#include "names.h"
#include "netns.h"
#include "output.h"

#define BUF_SIZE (256 * 1024)
#define LINE_MAX_LEN 3072	/* an event (< 1024) and its names (< 1200, all escaped) */
#define HEADER_MAX 2048		/* host and kernel: 64 bytes each, up to 6 written per byte */

struct output {
	int fd;
	const char *name;
	enum output_format fmt;
	__u64 base_ns;
	char *buf;
	size_t len;
	unsigned int pending;		/* events in buf */
	unsigned long long written;	/* events the kernel accepted */
	unsigned long long dropped;	/* events lost to failed writes */
	unsigned long long by_kind[PT_PORT_KIND_MAX];
	unsigned long long states, losts;
	int failing;			/* errno of the failure being counted */
	/* A header a failed write dropped is written again first: a file
	 * must never start without one. */
	const struct run_info *info;
	bool header_in_buf, header_lost;
	struct cgroups *cg;		/* NULL: events say cgroup ids only */
	struct netns *ns;
	long long full_free;		/* ENOSPC: bytes free after the cut-back */
};

struct output *output__new(int fd, const char *name, enum output_format fmt, __u64 base_ns)
{
	struct output *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->buf = malloc(BUF_SIZE);
	if (!o->buf) {
		free(o);
		return NULL;
	}
	o->fd = fd;
	o->name = name;
	o->fmt = fmt;
	o->base_ns = base_ns;
	return o;
}

void output__free(struct output *o)
{
	if (!o)
		return;
	output__flush(o);
	free(o->buf);
	free(o);
}

void output__set_fd(struct output *o, int fd)
{
	o->fd = fd;
}

unsigned long long output__written(const struct output *o)
{
	return o->written;
}

unsigned long long output__dropped(const struct output *o)
{
	return o->dropped;
}

int output__parse_format(const char *s, enum output_format *fmt)
{
	if (!strcmp(s, "text"))
		*fmt = OUTPUT_TEXT;
	else if (!strcmp(s, "json"))
		*fmt = OUTPUT_JSON;
	else if (!strcmp(s, "csv"))
		*fmt = OUTPUT_CSV;
	else
		return -EINVAL;
	return 0;
}

static size_t format_header(const struct output *o, char *p);

/* What no write could take is counted, never kept: tracing goes on. */
static void drop_pending(struct output *o)
{
	o->dropped += o->pending;
	o->len = 0;
	o->pending = 0;
	if (o->header_in_buf) {
		o->header_in_buf = false;
		o->header_lost = true;
	}
}

/* Bytes the file system of fd has free for us; -1 if it cannot tell. */
static long long free_bytes(int fd)
{
	struct statvfs sv;

	if (fstatvfs(fd, &sv))
		return -1;
	/* root may write into the blocks reserved for it */
	return (long long)(geteuid() ? sv.f_bavail : sv.f_bfree) * (long long)sv.f_frsize;
}

static int write_all(int fd, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		off += n;
	}
	return 0;
}

int output__flush(struct output *o)
{
	off_t before = -1;
	struct stat st;
	int err = 0;

	if (!o->len && !o->header_lost)
		return 0;
	/*
	 * A full disk is one period, said once: cutting a failed write back
	 * frees the room it took, and a smaller write then fits, only to fail
	 * again. So while the disk is full, nothing is tried until the file
	 * system has more room than it had right after that cut.
	 */
	if (o->failing == ENOSPC && o->full_free >= 0 && free_bytes(o->fd) <= o->full_free) {
		drop_pending(o);
		return -ENOSPC;
	}
	if (!fstat(o->fd, &st) && S_ISREG(st.st_mode))
		before = st.st_size;
	/* A file never starts without its header: one that a failed write
	 * dropped goes first, on its own, however full the buffer is. */
	if (o->header_lost) {
		char header[HEADER_MAX];

		err = write_all(o->fd, header, format_header(o, header));
		if (!err) {
			o->header_lost = false;
			if (!fstat(o->fd, &st) && S_ISREG(st.st_mode))
				before = st.st_size;
		}
	}
	if (!err)
		err = write_all(o->fd, o->buf, o->len);
	if (err) {
		/* Never leave half a line: cut the file back to the last
		 * complete one. */
		if (before >= 0 && ftruncate(o->fd, before))
			err = errno;
		if (!o->failing)
			fprintf(stderr,
				"porttrace: writing %s: %s; counting the events lost until it can write again\n",
				o->name, strerror(err));
		o->failing = err;
		o->full_free = err == ENOSPC ? free_bytes(o->fd) : -1;
		drop_pending(o);
		return -err;
	}
	if (o->failing) {
		fprintf(stderr, "porttrace: writing %s again after %llu events were lost\n", o->name,
			o->dropped);
		o->failing = 0;
	}
	o->written += o->pending;
	o->len = 0;
	o->pending = 0;
	o->header_in_buf = false;
	return 0;
}

/* ---- appenders: the caller made room for LINE_MAX_LEN bytes ---- */

/* Names are a few bytes long: a byte loop beats strlen() and a memcpy()
 * call of unknown length. */
static inline char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

#define PUT_LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* v as seconds with six decimals: "12.000345". */
static char *put_secs(char *p, long long ns)
{
	if (ns < 0) {
		*p++ = '-';
		ns = -ns;
	}
	p = json__put_u64(p, ns / 1000000000);
	*p++ = '.';
	unsigned long long us = (ns % 1000000000) / 1000;
	for (int d = 100000; d; d /= 10)
		*p++ = '0' + (us / d) % 10;
	return p;
}

static bool addr_is_any(__u8 family, const __u8 *addr)
{
	static const __u8 zero[16];

	return !memcmp(addr, zero, family == AF_INET ? 4 : 16);
}

/* Who can reach a listening port: anyone, this host only, or whoever
 * routes to one address. */
static const char *listen_scope(__u8 family, const __u8 *addr)
{
	static const __u8 v6_loopback[16] = {[15] = 1};
	static const __u8 v4_mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (addr_is_any(family, addr))
		return "wildcard";
	if (family == AF_INET ? addr[0] == 127
			      : !memcmp(addr, v6_loopback, 16) ||
				(!memcmp(addr, v4_mapped, 12) && addr[12] == 127))
		return "loopback";
	return "address";
}

static const char *event_name(const struct pt_event *ev)
{
	switch (ev->type) {
	case PT_EV_STATE:
		return "state";
	case PT_EV_PORT:
		return names__port_kind(ev->kind);
	case PT_EV_LOST:
		return "lost";
	}
	return "unknown";
}

/* The thread's name, where it is not the process's (a log of schema 1, or
 * the snapshot, has none). */
static bool thread_differs(const struct pt_owner *o)
{
	return o->thread[0] && strncmp(o->thread, o->comm, PT_TASK_COMM_LEN);
}

/* "held_by" of a bind-fail: what held the port it asked for. */
static char *json_held(char *p, const struct pt_held *h)
{
	p = PUT_LIT(p, ",\"held_by\":{\"listeners\":");
	p = json__put_u64(p, h->listeners);
	if (h->listener.pid) {
		p = PUT_LIT(p, ",\"pid\":");
		p = json__put_u64(p, h->listener.pid);
		p = PUT_LIT(p, ",\"comm\":");
		p = json__put_string(p, h->listener.comm, PT_TASK_COMM_LEN);
	}
	p = PUT_LIT(p, ",\"time_wait\":");
	p = json__put_u64(p, h->time_wait);
	if (h->time_wait) {
		p = PUT_LIT(p, ",\"time_wait_end_ns\":");
		p = json__put_u64(p, h->tw_end_ns);
	}
	p = PUT_LIT(p, ",\"connections\":");
	p = json__put_u64(p, h->connections);
	p = PUT_LIT(p, ",\"bound\":");
	p = json__put_u64(p, h->bound);
	*p++ = '}';
	return p;
}

/* ---- JSON Lines: every field of the event, so a log reads back whole ---- */

static char *json_event(char *p, const struct pt_event *ev)
{
	char ebuf[16], obuf[64];
	const char *s;

	p = PUT_LIT(p, "{\"type\":\"");
	p = put_str(p, ev->type == PT_EV_STATE ? "state" : ev->type == PT_EV_PORT ? "port" : "lost");
	p = PUT_LIT(p, "\",\"t_ns\":");
	p = json__put_u64(p, ev->ts_ns);
	if (ev->type == PT_EV_LOST) {
		p = PUT_LIT(p, ",\"lost\":");
		p = json__put_u64(p, ev->lost);
		p = PUT_LIT(p, ",\"lost_total\":");
		p = json__put_u64(p, ev->lost_total);
		return PUT_LIT(p, "}\n");
	}
	if (ev->type == PT_EV_PORT) {
		p = PUT_LIT(p, ",\"event\":\"");
		p = put_str(p, names__port_kind(ev->kind));
		*p++ = '"';
	}
	p = PUT_LIT(p, ",\"cpu\":");
	p = json__put_u64(p, ev->cpu);
	if (ev->flags & PT_F_OWNER_KNOWN) {
		p = PUT_LIT(p, ",\"pid\":");
		p = json__put_u64(p, ev->owner.pid);
		p = PUT_LIT(p, ",\"tid\":");
		p = json__put_u64(p, ev->owner.tid);
		p = PUT_LIT(p, ",\"pstart_ns\":");
		p = json__put_u64(p, ev->owner.start_ns);
		p = PUT_LIT(p, ",\"comm\":");
		p = json__put_string(p, ev->owner.comm, PT_TASK_COMM_LEN);
		if (thread_differs(&ev->owner)) {
			p = PUT_LIT(p, ",\"thread\":");
			p = json__put_string(p, ev->owner.thread, PT_TASK_COMM_LEN);
		}
		p = PUT_LIT(p, ",\"cgroup\":");
		p = json__put_u64(p, ev->owner.cgroup_id);
	} else {
		p = PUT_LIT(p, ",\"pid\":null,\"comm\":null");
	}
	p = PUT_LIT(p, ",\"netns\":");
	p = json__put_u64(p, ev->sk.netns);
	p = PUT_LIT(p, ",\"cookie\":");
	p = json__put_u64(p, ev->sk.cookie);
	p = PUT_LIT(p, ",\"proto\":\"");
	p = put_str(p, names__proto(ev->sk.proto));
	p = PUT_LIT(p, "\",\"family\":");
	*p++ = ev->sk.family == AF_INET6 ? '6' : '4';
	p = PUT_LIT(p, ",\"laddr\":\"");
	p = addr__put(p, ev->sk.family, ev->sk.laddr);
	p = PUT_LIT(p, "\",\"lport\":");
	if (pt_event_port_known(ev))
		p = json__put_u64(p, ev->sk.lport);
	else
		p = PUT_LIT(p, "null");
	p = PUT_LIT(p, ",\"raddr\":\"");
	p = addr__put(p, ev->sk.family, ev->sk.raddr);
	p = PUT_LIT(p, "\",\"rport\":");
	p = json__put_u64(p, ev->sk.rport);
	if (ev->type == PT_EV_STATE) {
		p = PUT_LIT(p, ",\"old\":\"");
		p = put_str(p, names__tcp_state(ev->oldstate));
		p = PUT_LIT(p, "\",\"new\":\"");
		p = put_str(p, names__tcp_state(ev->newstate));
		*p++ = '"';
	} else {
		/* A socket found in the kernel's table: the state it was in. */
		if (ev->kind == PT_PORT_EXISTING && ev->sk.proto == IPPROTO_TCP) {
			p = PUT_LIT(p, ",\"new\":\"");
			p = put_str(p, names__tcp_state(ev->newstate));
			*p++ = '"';
		}
		p = PUT_LIT(p, ",\"req_port\":");
		p = json__put_u64(p, ev->req_port);
		p = PUT_LIT(p, ",\"err\":");
		s = names__errno(ev->err, ebuf, sizeof(ebuf));
		if (s) {
			*p++ = '"';
			p = put_str(p, s);
			*p++ = '"';
		} else {
			p = PUT_LIT(p, "null");
		}
		p = PUT_LIT(p, ",\"latency_ns\":");
		p = json__put_u64(p, ev->latency_ns);
		if (ev->sk.range_hi) {
			p = PUT_LIT(p, ",\"range\":[");
			p = json__put_u64(p, ev->sk.range_lo);
			*p++ = ',';
			p = json__put_u64(p, ev->sk.range_hi);
			p = PUT_LIT(p, "],\"ephemeral\":");
			p = pt_event_in_range(ev) ? PUT_LIT(p, "true") : PUT_LIT(p, "false");
		}
		if (ev->kind == PT_PORT_LISTEN) {
			p = PUT_LIT(p, ",\"scope\":\"");
			p = put_str(p, listen_scope(ev->sk.family, ev->sk.laddr));
			*p++ = '"';
		}
		if ((ev->flags & PT_F_HELD) && ev->held)
			p = json_held(p, ev->held);
		if (pt_event_port_known(ev)) {
			p = PUT_LIT(p, ",\"class\":\"");
			p = put_str(p, names__port_class(ev->sk.lport));
			*p++ = '"';
			s = names__service(ev->sk.lport, ev->sk.proto);
			if (s) {
				p = PUT_LIT(p, ",\"service\":");
				p = json__put_string(p, s, 64);
			}
		}
	}
	if (ev->reason) {
		p = PUT_LIT(p, ",\"reason\":\"");
		p = put_str(p, names__reason(ev->reason));
		*p++ = '"';
	}
	if (ev->opts) {
		p = PUT_LIT(p, ",\"opts\":\"");
		p = put_str(p, names__opts(ev->opts, obuf, sizeof(obuf)));
		*p++ = '"';
	}
	p = PUT_LIT(p, ",\"flags\":");
	p = json__put_u64(p, ev->flags);
	return PUT_LIT(p, "}\n");
}

/* ---- text: one line per event, columns as in the header ---- */

static char *pad_to(char *p, char *col_start, size_t width)
{
	size_t n = (size_t)(p - col_start);

	do {
		*p++ = ' ';
	} while (++n < width + 1);
	return p;
}

static char *text_endpoint(char *p, __u8 family, const __u8 *addr, __u16 port, bool pending)
{
	bool v6 = family == AF_INET6;

	if (pending) {
		if (addr_is_any(family, addr))
			return PUT_LIT(p, "(port pending)");
	} else if (!port && addr_is_any(family, addr)) {
		return PUT_LIT(p, "-");
	}
	if (!pending)
		return addr__put_port(p, family, addr, port);
	if (v6)
		*p++ = '[';
	p = addr__put(p, family, addr);
	if (v6)
		*p++ = ']';
	return PUT_LIT(p, ":(pending)");
}

static char *text_meaning(char *p, const struct pt_event *ev)
{
	const char *svc;

	if (!pt_event_port_known(ev))
		return p;
	p = PUT_LIT(p, " [");
	p = put_str(p, names__port_class(ev->sk.lport));
	svc = names__service(ev->sk.lport, ev->sk.proto);
	if (svc) {
		*p++ = ' ';
		p = escape__text_put(p, svc, 64, NULL);
	}
	if (pt_event_in_range(ev))
		p = PUT_LIT(p, " ephemeral");
	if (ev->flags & PT_F_RESERVED)
		p = PUT_LIT(p, " reserved");
	*p++ = ']';
	return p;
}

static char *text_port_detail(char *p, const struct pt_event *ev)
{
	char ebuf[16], obuf[64];
	const char *err = names__errno(ev->err, ebuf, sizeof(ebuf));

	p = put_str(p, names__port_kind(ev->kind));
	if (err) {
		*p++ = ' ';
		p = put_str(p, err);
	}
	switch (ev->kind) {
	case PT_PORT_BIND:
	case PT_PORT_BIND_FAIL:
		p = PUT_LIT(p, " asked=");
		p = json__put_u64(p, ev->req_port);
		break;
	case PT_PORT_ALLOC:
	case PT_PORT_ALLOC_FAIL:
		p = ev->sk.proto == IPPROTO_UDP ? PUT_LIT(p, " udp-autobind")
						: PUT_LIT(p, " connect-autobind");
		break;
	case PT_PORT_LISTEN:
		*p++ = ' ';
		p = put_str(p, listen_scope(ev->sk.family, ev->sk.laddr));
		/* A reserved port is one no autobind takes. */
		if (pt_event_in_range(ev) && !(ev->flags & PT_F_RESERVED))
			p = PUT_LIT(p, " IN-EPHEMERAL-RANGE");
		break;
	case PT_PORT_TIMEWAIT:
		p = PUT_LIT(p, " held 60s");
		break;
	default:
		break;
	}
	if (ev->reason) {
		*p++ = ' ';
		p = put_str(p, names__reason(ev->reason));
	}
	if ((ev->flags & PT_F_HELD) && ev->held) {
		p = PUT_LIT(p, " held by: ");
		p += output__held_text(p, LINE_MAX_LEN / 2, ev->held, ev->ts_ns);
	}
	if (ev->flags & PT_F_COMPUTED)
		p = PUT_LIT(p, " (computed)");
	if (ev->latency_ns && (ev->kind == PT_PORT_ALLOC || ev->kind == PT_PORT_ALLOC_FAIL ||
			       ev->kind == PT_PORT_CONNECT)) {
		p = PUT_LIT(p, " lat=");
		p = json__put_u64(p, ev->latency_ns / 1000);
		p = PUT_LIT(p, "us");
	}
	if (ev->opts & (PT_OPT_REUSEADDR | PT_OPT_REUSEPORT | PT_OPT_BIND_NO_PORT)) {
		p = PUT_LIT(p, " opts=");
		p = put_str(p, names__opts(ev->opts & ~PT_OPT_BOUND_PORT, obuf, sizeof(obuf)));
	}
	return text_meaning(p, ev);
}

static char *text_event(char *p, const struct pt_event *ev, __u64 base_ns)
{
	char *col = p;
	bool known = ev->flags & PT_F_OWNER_KNOWN;

	p = put_secs(p, (long long)(ev->ts_ns - base_ns));
	p = pad_to(p, col, 10);
	if (ev->type == PT_EV_LOST) {
		p = PUT_LIT(p, "LOST ");
		p = json__put_u64(p, ev->lost);
		p = PUT_LIT(p, " records in the kernel, ");
		p = json__put_u64(p, ev->lost_total);
		return PUT_LIT(p, " in all\n");
	}
	col = p;
	p = known ? json__put_u64(p, ev->owner.pid) : PUT_LIT(p, "-");
	p = pad_to(p, col, 7);
	col = p;
	if (known) {
		size_t cols;

		/* Padded by the columns it shows, not its bytes. */
		p = escape__text_put(p, ev->owner.comm, PT_TASK_COMM_LEN, &cols);
		p = pad_to(p, p - cols, 15);
	} else {
		p = PUT_LIT(p, "-");
		p = pad_to(p, col, 15);
	}
	col = p;
	p = put_str(p, names__proto(ev->sk.proto));
	*p++ = ev->sk.family == AF_INET6 ? '6' : '4';
	p = pad_to(p, col, 5);
	col = p;
	p = text_endpoint(p, ev->sk.family, ev->sk.laddr, ev->sk.lport, !pt_event_port_known(ev));
	p = pad_to(p, col, 21);
	col = p;
	p = text_endpoint(p, ev->sk.family, ev->sk.raddr, ev->sk.rport, false);
	p = pad_to(p, col, 21);
	if (ev->type == PT_EV_STATE) {
		p = put_str(p, names__tcp_state(ev->oldstate));
		p = PUT_LIT(p, " -> ");
		p = put_str(p, names__tcp_state(ev->newstate));
		if (ev->reason) {
			p = PUT_LIT(p, " (");
			p = put_str(p, names__reason(ev->reason));
			*p++ = ')';
		}
	} else {
		p = text_port_detail(p, ev);
	}
	*p++ = '\n';
	return p;
}

/* ---- CSV: the same fields as JSON, in a fixed column order ---- */

static char *csv_event(char *p, const struct pt_event *ev)
{
	char ebuf[16], obuf[64];
	const char *err = names__errno(ev->err, ebuf, sizeof(ebuf));
	bool known = ev->flags & PT_F_OWNER_KNOWN;

	p = json__put_u64(p, ev->ts_ns);
	*p++ = ',';
	p = put_str(p, event_name(ev));
	*p++ = ',';
	if (ev->type == PT_EV_LOST) {
		/* No socket: only the count, in the latency_ns column. */
		p = PUT_LIT(p, ",,,,,,,,,,,,,");
		p = json__put_u64(p, ev->lost);
		return PUT_LIT(p, ",,\n");
	}
	if (known)
		p = json__put_u64(p, ev->owner.pid);
	*p++ = ',';
	if (known) {
		/* Made safe, then quoted with quotes doubled. */
		char safe[ESCAPE_TEXT_LEN(PT_TASK_COMM_LEN)];

		escape__text(safe, ev->owner.comm, PT_TASK_COMM_LEN);
		*p++ = '"';
		for (const char *c = safe; *c; c++) {
			if (*c == '"')
				*p++ = '"';
			*p++ = *c;
		}
		*p++ = '"';
	}
	*p++ = ',';
	p = put_str(p, names__proto(ev->sk.proto));
	*p++ = ',';
	*p++ = ev->sk.family == AF_INET6 ? '6' : '4';
	*p++ = ',';
	p = addr__put(p, ev->sk.family, ev->sk.laddr);
	*p++ = ',';
	if (pt_event_port_known(ev))
		p = json__put_u64(p, ev->sk.lport);
	*p++ = ',';
	p = addr__put(p, ev->sk.family, ev->sk.raddr);
	*p++ = ',';
	p = json__put_u64(p, ev->sk.rport);
	*p++ = ',';
	if (ev->type == PT_EV_STATE) {
		p = put_str(p, names__tcp_state(ev->oldstate));
		*p++ = ',';
		p = put_str(p, names__tcp_state(ev->newstate));
	} else {
		*p++ = ',';
	}
	*p++ = ',';
	if (err)
		p = put_str(p, err);
	*p++ = ',';
	if (ev->reason)
		p = put_str(p, names__reason(ev->reason));
	*p++ = ',';
	p = put_str(p, names__opts(ev->opts, obuf, sizeof(obuf)));
	*p++ = ',';
	p = json__put_u64(p, ev->type == PT_EV_LOST ? ev->lost : ev->latency_ns);
	*p++ = ',';
	p = json__put_u64(p, ev->sk.netns);
	*p++ = ',';
	p = json__put_u64(p, ev->sk.cookie);
	*p++ = '\n';
	return p;
}

static char *reserve_line(struct output *o)
{
	if (o->len + LINE_MAX_LEN > BUF_SIZE)
		output__flush(o);
	return o->buf + o->len;
}

void output__set_names(struct output *o, struct cgroups *cg, struct netns *ns)
{
	o->cg = cg;
	o->ns = ns;
}

/*
 * Who the owner is and where, in words, appended to a formatted line (end
 * points after its '\n'): JSON gets fields, text a "[unit]" or
 * "[runtime:container]" at the end. Names are bounded, so the line fits.
 */
static char *put_names(const struct output *o, char *end, const struct pt_event *ev)
{
	const struct cgroup_ident *id = NULL;
	const char *ns = NULL;
	char *p;

	if (ev->type == PT_EV_LOST)
		return end;
	if (o->cg && (ev->flags & PT_F_OWNER_KNOWN))
		id = cgroups__lookup(o->cg, ev->owner.cgroup_id);
	if (o->ns && o->fmt == OUTPUT_JSON)
		ns = netns__name(o->ns, ev->sk.netns);
	if (!id && !ns)
		return end;
	if (o->fmt == OUTPUT_TEXT) {
		if (!id || !id->name[0])
			return end;
		p = end - 1;
		p = PUT_LIT(p, " [");
		p = escape__text_put(p, id->name, 100, NULL);
		return PUT_LIT(p, "]\n");
	}
	if (o->fmt != OUTPUT_JSON)
		return end;
	p = end - 2;	/* "}\n" */
	if (ns) {
		p = PUT_LIT(p, ",\"netns_name\":");
		p = json__put_string(p, ns, 64);
	}
	if (id && id->unit[0]) {
		p = PUT_LIT(p, ",\"unit\":");
		p = json__put_string(p, id->unit, 100);
	}
	if (id && id->container[0]) {
		p = PUT_LIT(p, ",\"container\":");
		p = json__put_string(p, id->container, sizeof(id->container));
		p = PUT_LIT(p, ",\"runtime\":");
		p = json__put_string(p, id->runtime, sizeof(id->runtime));
	}
	if (id && id->pod[0]) {
		p = PUT_LIT(p, ",\"pod\":");
		p = json__put_string(p, id->pod, sizeof(id->pod));
	}
	return PUT_LIT(p, "}\n");
}

int output__event(void *ctx, const struct pt_event *ev)
{
	struct output *o = ctx;
	char *start = reserve_line(o), *p;

	switch (o->fmt) {
	case OUTPUT_JSON:
		p = json_event(start, ev);
		break;
	case OUTPUT_CSV:
		p = csv_event(start, ev);
		break;
	default:
		p = text_event(start, ev, o->base_ns);
		break;
	}
	p = put_names(o, p, ev);
	o->len += p - start;
	o->pending++;
	if (ev->type == PT_EV_STATE)
		o->states++;
	else if (ev->type == PT_EV_LOST)
		o->losts++;
	else if (ev->kind < PT_PORT_KIND_MAX)
		o->by_kind[ev->kind]++;
	return 0;
}

int output__raw(struct output *o, const char *line, size_t len)
{
	if (len > BUF_SIZE)
		return -E2BIG;
	if (o->len + len > BUF_SIZE)
		output__flush(o);
	memcpy(o->buf + o->len, line, len);
	o->len += len;
	return 0;
}

size_t output__held_text(char *buf, size_t len, const struct pt_held *h, __u64 now_ns)
{
	char comm[ESCAPE_TEXT_LEN(PT_TASK_COMM_LEN)], d[32];
	size_t n = 0;

#define HELD_PUT(...)                                                                  \
	do {                                                                           \
		int k = snprintf(buf + n, len - n, __VA_ARGS__);                       \
		if (k > 0)                                                             \
			n += (size_t)k < len - n ? (size_t)k : len - n - 1;            \
	} while (0)
	buf[0] = '\0';
	if (!len)
		return 0;
	if (h->listeners) {
		escape__text(comm, h->listener.comm, PT_TASK_COMM_LEN);
		if (h->listener.pid)
			HELD_PUT("%u listener%s (pid %u %s)", h->listeners, h->listeners > 1 ? "s" : "",
				 h->listener.pid, comm);
		else
			HELD_PUT("%u listener%s", h->listeners, h->listeners > 1 ? "s" : "");
	}
	if (h->time_wait)
		HELD_PUT("%s%u time-wait (the last ends in %s)", n ? ", " : "", h->time_wait,
			 names__duration(h->tw_end_ns > now_ns ? h->tw_end_ns - now_ns : 0, d,
					 sizeof(d)));
	if (h->connections)
		HELD_PUT("%s%u connection%s", n ? ", " : "", h->connections,
			 h->connections > 1 ? "s" : "");
	if (h->bound)
		HELD_PUT("%s%u bound socket%s", n ? ", " : "", h->bound, h->bound > 1 ? "s" : "");
	if (!n)
		HELD_PUT("nothing porttrace saw");
#undef HELD_PUT
	return n;
}

static void put_header(struct output *o);

void output__header(struct output *o, const struct run_info *info)
{
	o->info = info;
	o->header_lost = false;
	put_header(o);
}

static size_t format_header(const struct output *o, char *start)
{
	const struct run_info *info = o->info;
	char *p = start;

	switch (o->fmt) {
	case OUTPUT_JSON:
		p = PUT_LIT(p, "{\"type\":\"header\",\"schema\":");
		p = json__put_u64(p, PT_SCHEMA_VERSION);
		p = PUT_LIT(p, ",\"porttrace\":");
		p = json__put_string(p, info->version, 64);
		p = PUT_LIT(p, ",\"host\":");
		p = json__put_string(p, info->host, 64);
		p = PUT_LIT(p, ",\"kernel\":");
		p = json__put_string(p, info->kernel, 64);
		p = PUT_LIT(p, ",\"clock\":\"CLOCK_MONOTONIC\",\"start_mono_ns\":");
		p = json__put_u64(p, info->start_mono_ns);
		p = PUT_LIT(p, ",\"start_realtime_ns\":");
		p = json__put_u64(p, info->start_realtime_ns);
		if (info->range_hi) {
			p = PUT_LIT(p, ",\"ephemeral_range\":[");
			p = json__put_u64(p, info->range_lo);
			*p++ = ',';
			p = json__put_u64(p, info->range_hi);
			*p++ = ']';
		}
		p = PUT_LIT(p, "}\n");
		break;
	case OUTPUT_CSV:
		p = PUT_LIT(p, "t_ns,event,pid,comm,proto,family,laddr,lport,raddr,rport,old,new,"
			       "err,reason,opts,latency_ns,netns,cookie\n");
		break;
	default:
		p += snprintf(p, HEADER_MAX, "%-10s %-7s %-15s %-5s %-21s %-21s %s\n", "TIME(s)",
			      "PID", "COMM", "PROTO", "LADDR:LPORT", "RADDR:RPORT", "EVENT");
		break;
	}
	return p - start;
}

static void put_header(struct output *o)
{
	char header[HEADER_MAX];
	size_t len = format_header(o, header);

	if (o->len + len > BUF_SIZE)
		output__flush(o);
	memcpy(o->buf + o->len, header, len);
	o->len += len;
	o->header_in_buf = true;
}

void output__trailer(struct output *o, const struct run_stats *st)
{
	char *start, *p;

	if (o->fmt != OUTPUT_JSON)
		return;
	start = p = reserve_line(o);
	p = PUT_LIT(p, "{\"type\":\"trailer\",\"t_ns\":");
	p = json__put_u64(p, st->end_mono_ns);
	p = PUT_LIT(p, ",\"events\":{\"state\":");
	p = json__put_u64(p, o->states);
	for (int k = 1; k < PT_PORT_KIND_MAX; k++) {
		p = PUT_LIT(p, ",\"");
		p = put_str(p, names__port_kind(k));
		p = PUT_LIT(p, "\":");
		p = json__put_u64(p, o->by_kind[k]);
	}
	p = PUT_LIT(p, ",\"lost\":");
	p = json__put_u64(p, o->losts);
	p = PUT_LIT(p, "},\"kernel_lost\":");
	p = json__put_u64(p, st->lost);
	p = PUT_LIT(p, ",\"bad_records\":");
	p = json__put_u64(p, st->bad);
	p = PUT_LIT(p, ",\"aged\":");
	p = json__put_u64(p, st->aged);
	/* Counted before this flush: what this very line could not write
	 * cannot be in it. */
	p = PUT_LIT(p, ",\"write_lost\":");
	p = json__put_u64(p, o->dropped);
	p = PUT_LIT(p, "}\n");
	o->len += p - start;
	output__flush(o);
}

const char *output__listen_scope(__u8 family, const __u8 *addr)
{
	return listen_scope(family, addr);
}
