// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The log is porttrace's own output, so the parser only needs what the
 * writer produces: one flat object per line whose values are strings,
 * integers, null, booleans or arrays of integers. Anything else is a
 * malformed line, reported and skipped, never a crash: this parser is
 * fuzzed (tests/fuzz).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>
#include "log.h"
#include "logreader.h"
#include "names.h"
#include "output.h"

#define LINE_BUF (64 * 1024)
#define MAX_WARNINGS_PER_FILE 20
/*
 * A porttrace log compresses 18 times at gzip -1 (its rotation) and 28 at
 * -9 (measured): a piece that inflates far beyond that is no porttrace log
 * but a way to keep a reader busy (1 GiB of newlines is 4.7 MB at -1, and
 * took a minute to read line by line). Such a piece is refused once it has
 * given INFLATE_FLOOR and more than MAX_INFLATE_RATIO times the compressed
 * bytes read so far, which zlib's read-ahead can only overstate.
 */
#define MAX_INFLATE_RATIO 100
#define INFLATE_FLOOR (4ULL << 20)

struct logreader {
	unsigned long warnings;
	struct pt_held held;	/* of the line just parsed */
	unsigned long long start_realtime_ns;
	unsigned long long start_mono_ns;
	char host[256];		/* from the header; "" when none was seen */
	unsigned long long write_lost;	/* of the trailer just parsed */
	char *line;
};

struct cur {
	const char *p, *end;
};

static void ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static bool eat(struct cur *c, char ch)
{
	ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static bool eat_word(struct cur *c, const char *w)
{
	size_t n = strlen(w);

	ws(c);
	if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
		c->p += n;
		return true;
	}
	return false;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int hex4(struct cur *c)
{
	int v = 0;

	if (c->end - c->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hexval(c->p[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	c->p += 4;
	return v;
}

/*
 * The bytes a \u escape stands for (escape.h): \udcNN is the byte NN that
 * was not UTF-8; \u0080-\u00ff is byte 0x80-0xff too, as porttrace wrote
 * every such byte before it passed UTF-8 through (it writes none now); any
 * other code point, a surrogate pair included, is written as UTF-8; a lone
 * surrogate that porttrace does not write is '?'.
 */
static int unescape_u(struct cur *c, char *b)
{
	int v = hex4(c), lo;

	if (v < 0)
		return -1;
	if (v <= 0xff || (v >= 0xdc80 && v <= 0xdcff)) {
		b[0] = (char)(v & 0xff);
		return 1;
	}
	if (v >= 0xd800 && v <= 0xdbff && c->end - c->p >= 6 && c->p[0] == '\\' &&
	    c->p[1] == 'u') {
		struct cur peek = {c->p + 2, c->end};

		lo = hex4(&peek);
		if (lo >= 0xdc00 && lo <= 0xdfff) {
			c->p = peek.p;
			v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
		}
	}
	if (v >= 0xd800 && v <= 0xdfff) {
		b[0] = '?';
		return 1;
	}
	if (v < 0x800) {
		b[0] = (char)(0xc0 | v >> 6);
		b[1] = (char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		b[0] = (char)(0xe0 | v >> 12);
		b[1] = (char)(0x80 | (v >> 6 & 0x3f));
		b[2] = (char)(0x80 | (v & 0x3f));
		return 3;
	}
	b[0] = (char)(0xf0 | v >> 18);
	b[1] = (char)(0x80 | (v >> 12 & 0x3f));
	b[2] = (char)(0x80 | (v >> 6 & 0x3f));
	b[3] = (char)(0x80 | (v & 0x3f));
	return 4;
}

/* A JSON string into out (NUL-terminated, truncated to cap, never inside a
 * character's bytes). */
static int parse_string(struct cur *c, char *out, size_t cap, size_t *len)
{
	size_t n = 0;

	if (!eat(c, '"'))
		return -1;
	while (c->p < c->end && *c->p != '"') {
		char b[4];
		int nb = 1;

		b[0] = *c->p++;
		if (b[0] == '\\') {
			if (c->p >= c->end)
				return -1;
			switch (*c->p++) {
			case '"': b[0] = '"'; break;
			case '\\': b[0] = '\\'; break;
			case '/': b[0] = '/'; break;
			case 'n': b[0] = '\n'; break;
			case 't': b[0] = '\t'; break;
			case 'r': b[0] = '\r'; break;
			case 'b': b[0] = '\b'; break;
			case 'f': b[0] = '\f'; break;
			case 'u':
				nb = unescape_u(c, b);
				if (nb < 0)
					return -1;
				break;
			default:
				return -1;
			}
		} else if ((unsigned char)b[0] < 0x20) {
			return -1;
		}
		if (n + nb < cap) {
			memcpy(out + n, b, nb);
			n += nb;
		} else {
			cap = n + 1;	/* full: keep no later, shorter character */
		}
	}
	if (!eat(c, '"'))
		return -1;
	out[n] = '\0';
	if (len)
		*len = n;
	return 0;
}

static int parse_uint(struct cur *c, unsigned long long *v)
{
	unsigned long long x = 0;
	const char *start;

	ws(c);
	start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = *c->p++ - '0';

		if (x > (~0ULL - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	if (c->p == start)
		return -1;
	*v = x;
	return 0;
}

/*
 * Deepest nesting skip_value() follows. porttrace writes values at most a
 * few levels deep; a garbage line of 30000 '[' would otherwise recurse once
 * per bracket and overflow the stack, so deeper is a malformed line.
 */
#define MAX_SKIP_DEPTH 16

/* Skip a value of a key this reader does not know: newer writers may add
 * fields, and old readers keep working. depth: containers already open. */
static int skip_value(struct cur *c, int depth)
{
	char tmp[256];
	unsigned long long v;

	ws(c);
	if (c->p >= c->end)
		return -1;
	if (*c->p == '"')
		return parse_string(c, tmp, sizeof(tmp), NULL);
	if (eat_word(c, "null") || eat_word(c, "true") || eat_word(c, "false"))
		return 0;
	if ((*c->p == '{' || *c->p == '[') && depth >= MAX_SKIP_DEPTH)
		return -1;
	if (eat(c, '{')) {
		char key[64];

		if (eat(c, '}'))
			return 0;
		do {
			if (parse_string(c, key, sizeof(key), NULL) || !eat(c, ':') ||
			    skip_value(c, depth + 1))
				return -1;
		} while (eat(c, ','));
		return eat(c, '}') ? 0 : -1;
	}
	if (eat(c, '[')) {
		if (eat(c, ']'))
			return 0;
		do {
			if (skip_value(c, depth + 1))
				return -1;
		} while (eat(c, ','));
		return eat(c, ']') ? 0 : -1;
	}
	if (*c->p == '-')
		c->p++;
	if (parse_uint(c, &v))
		return -1;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (parse_uint(c, &v))
			return -1;
	}
	return 0;
}

/* A number that may be null (unknown): null leaves *v alone. */
static int parse_uint_or_null(struct cur *c, unsigned long long *v, bool *is_null)
{
	*is_null = eat_word(c, "null");
	return *is_null ? 0 : parse_uint(c, v);
}

enum rec_kind {
	REC_NONE,
	REC_HEADER,
	REC_TRAILER,
	REC_STATE,
	REC_PORT,
	REC_LOST,
	REC_EXHAUSTION,	/* --exhaustion snapshot: nested figures, no event */
	REC_UNKNOWN,
};

struct parsed {
	enum rec_kind kind;
	char laddr[64], raddr[64];
	bool have_t, have_old, have_new, have_event;
	unsigned long long schema;
	unsigned long long write_lost;	/* a trailer's */
};

/* A bind-fail's "held_by" object (schema 2). */
static int parse_held(struct cur *c, struct pt_held *h)
{
	unsigned long long v;
	char key[64];

	memset(h, 0, sizeof(*h));
	if (!eat(c, '{'))
		return -1;
	if (eat(c, '}'))
		return 0;
	do {
		if (parse_string(c, key, sizeof(key), NULL) || !eat(c, ':'))
			return -1;
		if (!strcmp(key, "comm")) {
			if (parse_string(c, h->listener.comm, sizeof(h->listener.comm), NULL))
				return -1;
			continue;
		}
		if (!strcmp(key, "listeners") || !strcmp(key, "pid") || !strcmp(key, "time_wait") ||
		    !strcmp(key, "time_wait_end_ns") || !strcmp(key, "connections") ||
		    !strcmp(key, "bound")) {
			if (parse_uint(c, &v))
				return -1;
			if (strcmp(key, "time_wait_end_ns") && v > 0xffffffffULL)
				return -1;
		} else if (skip_value(c, 1)) {
			return -1;
		} else {
			continue;
		}
		if (!strcmp(key, "listeners"))
			h->listeners = v;
		else if (!strcmp(key, "pid"))
			h->listener.pid = h->listener.tid = v;
		else if (!strcmp(key, "time_wait"))
			h->time_wait = v;
		else if (!strcmp(key, "time_wait_end_ns"))
			h->tw_end_ns = v;
		else if (!strcmp(key, "connections"))
			h->connections = v;
		else
			h->bound = v;
	} while (eat(c, ','));
	return eat(c, '}') ? 0 : -1;
}

static int parse_field(struct logreader *r, struct cur *c, const char *key, struct parsed *ps,
		       struct pt_event *ev)
{
	char s[256];
	size_t n;
	unsigned long long v = 0;
	bool null;
	int x;

#define KEY(k) (!strcmp(key, k))
#define UINT_FIELD(k, field, max)                                                  \
	if (KEY(k)) {                                                              \
		if (parse_uint(c, &v) || v > (max))                                \
			return -1;                                                 \
		field = v;                                                         \
		return 0;                                                          \
	}
	if (KEY("type")) {
		if (parse_string(c, s, sizeof(s), NULL))
			return -1;
		ps->kind = !strcmp(s, "state")	   ? REC_STATE
			   : !strcmp(s, "port")	   ? REC_PORT
			   : !strcmp(s, "lost")	   ? REC_LOST
			   : !strcmp(s, "header")  ? REC_HEADER
			   : !strcmp(s, "trailer") ? REC_TRAILER
			   : !strcmp(s, "exhaustion") ? REC_EXHAUSTION
						   : REC_UNKNOWN;
		return 0;
	}
	if (KEY("t_ns")) {
		ps->have_t = true;
		return parse_uint(c, &v) ? -1 : (ev->ts_ns = v, 0);
	}
	UINT_FIELD("cpu", ev->cpu, 0xffffffffULL)
	UINT_FIELD("tid", ev->owner.tid, 0xffffffffULL)
	UINT_FIELD("pstart_ns", ev->owner.start_ns, ~0ULL)
	UINT_FIELD("cgroup", ev->owner.cgroup_id, ~0ULL)
	UINT_FIELD("netns", ev->sk.netns, 0xffffffffULL)
	UINT_FIELD("cookie", ev->sk.cookie, ~0ULL)
	UINT_FIELD("rport", ev->sk.rport, 65535)
	UINT_FIELD("req_port", ev->req_port, 65535)
	UINT_FIELD("latency_ns", ev->latency_ns, ~0ULL)
	UINT_FIELD("flags", ev->flags, 0xffffffffULL)
	UINT_FIELD("lost", ev->lost, ~0ULL)
	UINT_FIELD("lost_total", ev->lost_total, ~0ULL)
	UINT_FIELD("schema", ps->schema, ~0ULL)
	UINT_FIELD("write_lost", ps->write_lost, ~0ULL)
	UINT_FIELD("start_mono_ns", r->start_mono_ns, ~0ULL)
	UINT_FIELD("start_realtime_ns", r->start_realtime_ns, ~0ULL)
	if (KEY("host") && ps->kind == REC_HEADER)
		return parse_string(c, r->host, sizeof(r->host), NULL);
	if (KEY("pid")) {
		if (parse_uint_or_null(c, &v, &null) || v > 0xffffffffULL)
			return -1;
		ev->owner.pid = null ? 0 : v;
		return 0;
	}
	if (KEY("lport")) {
		if (parse_uint_or_null(c, &v, &null) || v > 65535)
			return -1;
		ev->sk.lport = null ? 0 : v;
		return 0;
	}
	if (KEY("comm")) {
		if (eat_word(c, "null"))
			return 0;
		return parse_string(c, ev->owner.comm, sizeof(ev->owner.comm), NULL);
	}
	/* Schema 2; in schema 1 comm was the thread's name, and there is no
	 * process name to be had. */
	if (KEY("thread"))
		return parse_string(c, ev->owner.thread, sizeof(ev->owner.thread), NULL);
	if (KEY("held_by"))
		return parse_held(c, &r->held) ? -1 : (ev->held = &r->held, ev->flags |= PT_F_HELD, 0);
	if (KEY("proto")) {
		if (parse_string(c, s, sizeof(s), NULL))
			return -1;
		ev->sk.proto = !strcmp(s, "tcp") ? IPPROTO_TCP : !strcmp(s, "udp") ? IPPROTO_UDP : 0;
		return ev->sk.proto ? 0 : -1;
	}
	if (KEY("family")) {
		if (parse_uint(c, &v) || (v != 4 && v != 6))
			return -1;
		ev->sk.family = v == 4 ? AF_INET : AF_INET6;
		return 0;
	}
	if (KEY("laddr"))
		return parse_string(c, ps->laddr, sizeof(ps->laddr), NULL);
	if (KEY("raddr"))
		return parse_string(c, ps->raddr, sizeof(ps->raddr), NULL);
	if (KEY("old") || KEY("new")) {
		if (parse_string(c, s, sizeof(s), &n) || (x = names__tcp_state_parse(s, n)) < 0)
			return -1;
		if (KEY("old"))
			ev->oldstate = x, ps->have_old = true;
		else
			ev->newstate = x, ps->have_new = true;
		return 0;
	}
	if (KEY("event")) {
		if (parse_string(c, s, sizeof(s), &n) || (x = names__port_kind_parse(s, n)) <= 0)
			return -1;
		ev->kind = x;
		ps->have_event = true;
		return 0;
	}
	if (KEY("reason")) {
		if (parse_string(c, s, sizeof(s), &n) || (x = names__reason_parse(s, n)) < 0)
			return -1;
		ev->reason = x;
		return 0;
	}
	if (KEY("err")) {
		if (eat_word(c, "null"))
			return 0;
		if (parse_string(c, s, sizeof(s), &n) || (x = names__errno_parse(s, n)) < 0)
			return -1;
		ev->err = x;
		return 0;
	}
	if (KEY("opts")) {
		if (parse_string(c, s, sizeof(s), &n))
			return -1;
		ev->opts = names__opts_parse(s, n);
		return 0;
	}
	if (KEY("range")) {
		unsigned long long lo, hi;

		if (!eat(c, '[') || parse_uint(c, &lo) || !eat(c, ',') || parse_uint(c, &hi) ||
		    !eat(c, ']') || lo > 65535 || hi > 65535)
			return -1;
		ev->sk.range_lo = lo;
		ev->sk.range_hi = hi;
		return 0;
	}
#undef UINT_FIELD
#undef KEY
	return skip_value(c, 0);
}

static int parse_addr(const char *s, __u8 family, __u8 *out)
{
	if (!*s)
		return 0;
	return inet_pton(family, s, out) == 1 ? 0 : -1;
}

int logreader__parse_line(struct logreader *r, const char *line, size_t len, struct pt_event *ev)
{
	struct cur c = {line, line + len};
	struct parsed ps = {};
	char key[64];

	memset(ev, 0, sizeof(*ev));
	if (!eat(&c, '{'))
		return -EINVAL;
	if (!eat(&c, '}')) {
		do {
			if (parse_string(&c, key, sizeof(key), NULL) || !eat(&c, ':') ||
			    parse_field(r, &c, key, &ps, ev))
				return -EINVAL;
			if (ps.kind == REC_EXHAUSTION)
				return 0;	/* "type" comes first; skip the rest */
		} while (eat(&c, ','));
		if (!eat(&c, '}'))
			return -EINVAL;
	}
	ws(&c);
	if (c.p != c.end)
		return -EINVAL;

	switch (ps.kind) {
	case REC_HEADER:
		return ps.schema > PT_SCHEMA_VERSION ? -EPROTO : 0;
	case REC_TRAILER:
		r->write_lost = ps.write_lost;
		return 0;
	case REC_LOST:
		ev->type = PT_EV_LOST;
		return ps.have_t ? 1 : -EINVAL;
	case REC_STATE:
		ev->type = PT_EV_STATE;
		if (!ps.have_old || !ps.have_new)
			return -EINVAL;
		break;
	case REC_PORT:
		ev->type = PT_EV_PORT;
		if (!ps.have_event)
			return -EINVAL;
		break;
	case REC_UNKNOWN:
		return -ENOMSG;
	default:
		return -EINVAL;
	}
	if (!ps.have_t || !ev->sk.family || parse_addr(ps.laddr, ev->sk.family, ev->sk.laddr) ||
	    parse_addr(ps.raddr, ev->sk.family, ev->sk.raddr))
		return -EINVAL;
	return 1;
}

static void warn_line(struct logreader *r, unsigned long *file_warnings, const char *path,
		      unsigned long lineno, const char *what)
{
	r->warnings++;
	if (++*file_warnings <= MAX_WARNINGS_PER_FILE)
		p_warn("%s:%lu: %s", path, lineno, what);
}

static int read_piece(struct logreader *r, const char *path, pt_event_fn fn, void *ctx)
{
	unsigned long lineno = 0, file_warnings = 0;
	unsigned long long inflated = 0;
	bool compressed;
	struct stat st;
	gzFile gz;
	int ret = 0;

	/* gzopen() opens a directory, and only reading it fails. */
	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		p_err("cannot read %s: %s", path, strerror(EISDIR));
		return -EISDIR;
	}
	gz = gzopen(path, "rb");
	if (!gz) {
		p_err("cannot read %s: %s", path, strerror(errno ? errno : ENOMEM));
		return -(errno ? errno : ENOMEM);
	}
	gzbuffer(gz, 256 * 1024);
	compressed = !gzdirect(gz);
	while (gzgets(gz, r->line, LINE_BUF)) {
		size_t len = strlen(r->line);
		bool complete = len && r->line[len - 1] == '\n';
		struct pt_event ev;
		int res;

		lineno++;
		inflated += len;
		if (!complete && len == LINE_BUF - 1) {
			/* Longer than any line porttrace writes: skip it all. */
			int ch;

			while ((ch = gzgetc(gz)) != -1 && ch != '\n')
				inflated++;
			warn_line(r, &file_warnings, path, lineno, "line too long, skipped");
		}
		if (compressed && inflated > INFLATE_FLOOR &&
		    inflated / MAX_INFLATE_RATIO > (unsigned long long)gzoffset(gz)) {
			p_err("%s inflates more than %d-fold, as no porttrace log does; refusing it",
			      path, MAX_INFLATE_RATIO);
			ret = -EFBIG;
			break;
		}
		/* A blank line holds no record: nothing to warn about. */
		if (!complete && len == LINE_BUF - 1)
			continue;
		if (len == strspn(r->line, " \t\r\n"))
			continue;
		res = logreader__parse_line(r, r->line, len, &ev);
		if (res == 1) {
			ret = fn(ctx, &ev);
			if (ret)
				break;
		} else if (res == 0 && r->write_lost) {
			char what[160];

			/* The run could not write these (a full or failing
			 * disk): whatever is read from this log misses them,
			 * and only the trailer says so. */
			snprintf(what, sizeof(what),
				 "the run that wrote this log could not write %llu of its events "
				 "(trailer's write_lost); figures from it miss them",
				 r->write_lost);
			r->write_lost = 0;
			warn_line(r, &file_warnings, path, lineno, what);
		} else if (res == -EPROTO) {
			warn_line(r, &file_warnings, path, lineno,
				  "written by a newer porttrace (newer schema); reading what is understood");
		} else if (res == -ENOMSG) {
			warn_line(r, &file_warnings, path, lineno, "unknown record type, skipped");
		} else if (res < 0) {
			warn_line(r, &file_warnings, path, lineno,
				  complete ? "malformed line, skipped" : "truncated last line, skipped");
		}
	}
	if (!gzeof(gz)) {
		int errnum;
		const char *msg = gzerror(gz, &errnum);

		if (errnum != Z_OK)
			warn_line(r, &file_warnings, path, lineno, msg);
	}
	if (file_warnings > MAX_WARNINGS_PER_FILE)
		p_warn("%s: %lu more warnings not shown", path, file_warnings - MAX_WARNINGS_PER_FILE);
	gzclose(gz);
	return ret;
}

/*
 * Rotated piece i is FILE.i.gz (FILE.1.gz the newest), or FILE.i while
 * porttrace is still compressing it. Writes its name; false when absent.
 */
static bool piece_name(const char *path, int i, char *name, size_t len)
{
	snprintf(name, len, "%s.%d.gz", path, i);
	if (!access(name, F_OK))
		return true;
	snprintf(name, len, "%s.%d", path, i);
	return !access(name, F_OK);
}

static int count_pieces(const char *path)
{
	char name[4096];
	int n = 0;

	while (piece_name(path, n + 1, name, sizeof(name)))
		n++;
	return n;
}

int logreader__read(struct logreader *r, const char *path, pt_event_fn fn, void *ctx)
{
	char name[4096];
	int ret;

	if (access(path, R_OK)) {
		p_err("cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	for (int i = count_pieces(path); i > 0; i--) {
		if (!piece_name(path, i, name, sizeof(name)))
			continue;	/* compressed meanwhile and renamed */
		ret = read_piece(r, name, fn, ctx);
		if (ret)
			return ret;
	}
	return read_piece(r, path, fn, ctx);
}

int logreader__read_all(struct logreader *r, char *const *files, int nfiles, pt_event_fn fn,
			void *ctx)
{
	int ret = 0;

	for (int i = 0; i < nfiles && !ret; i++)
		ret = logreader__read(r, files[i], fn, ctx);
	return ret;
}

struct logreader *logreader__new(void)
{
	struct logreader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->line = malloc(LINE_BUF);
	if (!r->line) {
		free(r);
		return NULL;
	}
	return r;
}

void logreader__free(struct logreader *r)
{
	if (!r)
		return;
	free(r->line);
	free(r);
}

unsigned long logreader__warnings(const struct logreader *r)
{
	return r->warnings;
}

unsigned long long logreader__start_realtime_ns(const struct logreader *r)
{
	return r->start_realtime_ns;
}

unsigned long long logreader__start_mono_ns(const struct logreader *r)
{
	return r->start_mono_ns;
}

const char *logreader__host(const struct logreader *r)
{
	return r->host[0] ? r->host : NULL;
}
