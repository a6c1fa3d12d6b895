// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * A netlink socket answers for the network namespace it was created in, and
 * /proc/sys/net shows the namespace of the thread that opens it. So for each
 * namespace a short-lived thread joins it (setns() changes only the calling
 * thread), opens the netlink socket and reads the two sysctls, and ends;
 * the main thread never leaves its own namespace and runs the dumps on the
 * socket it was handed.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include "log.h"
#include "run.h"
#include "sockdiag.h"
#include "socktab.h"

#define DIAG_TIMER_TW 3		/* idiag_timer of a time-wait socket */
#define RECV_BUF (64 * 1024)
#define MAX_NETNS 65536
#define MAX_SOCKETS (1u << 22)

/* One namespace, and a path that opens it while we look. */
struct ns_ref {
	__u32 inode;
	char path[PATH_MAX];
};

/* What the thread inside a namespace hands back. */
struct ns_job {
	int nsfd;
	int sock;
	int err;
	__u16 range_lo, range_hi;
	__u64 reserved[65536 / 64];
};

struct dump_ctx {
	unsigned int flags;
	pt_event_fn fn;
	void *ctx;
	__u64 now_ns;
	__u64 boot_offset_ns;		/* CLOCK_BOOTTIME - CLOCK_MONOTONIC */
	long ticks_per_s;
	struct socktab *inode_pid;	/* socket inode -> pid */
	struct socktab *pid_owner;	/* pid -> struct pt_owner */
	char *buf;
	__u32 seq;
};

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* ---- the sysctls, as the calling thread's namespace has them ---- */

void sockdiag__own_range(__u16 *lo, __u16 *hi)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	unsigned int a, b;

	*lo = *hi = 0;
	if (!f)
		return;
	if (fscanf(f, "%u %u", &a, &b) == 2 && a <= b && b <= 65535) {
		*lo = a;
		*hi = b;
	}
	fclose(f);
}

/* "8080,9000-9010" into one bit per port. */
static void read_reserved(__u64 *bits)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_reserved_ports", "re");
	char line[8192], *p, *tok, *save;

	memset(bits, 0, 65536 / 8);
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return;
	}
	fclose(f);
	for (p = line; (tok = strtok_r(p, ",\n", &save)); p = NULL) {
		unsigned int a, b;
		int n = sscanf(tok, "%u-%u", &a, &b);

		if (n == 1)
			b = a;
		if (n < 1 || a > b || b > 65535)
			continue;
		for (unsigned int port = a; port <= b; port++)
			bits[port / 64] |= 1ULL << (port % 64);
	}
}

static void *ns_enter(void *arg)
{
	struct ns_job *j = arg;

	if (setns(j->nsfd, CLONE_NEWNET)) {
		j->err = -errno;
		return NULL;
	}
	j->sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (j->sock < 0) {
		j->err = -errno;
		return NULL;
	}
	sockdiag__own_range(&j->range_lo, &j->range_hi);
	read_reserved(j->reserved);
	return NULL;
}

/* Open a netlink socket inside the namespace at path; fills j. */
static int ns_open(const char *path, struct ns_job *j)
{
	pthread_t th;
	int err;

	j->sock = -1;
	j->err = 0;
	j->nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (j->nsfd < 0)
		return -errno;
	err = pthread_create(&th, NULL, ns_enter, j);
	if (!err)
		err = pthread_join(th, NULL);
	close(j->nsfd);
	if (err)
		return -err;
	return j->err;
}

/* ---- which namespaces there are ---- */

static int ns_add(struct ns_ref **v, size_t *n, size_t *cap, struct socktab *seen, const char *path)
{
	struct stat st;
	char one = 1;

	if (stat(path, &st) || socktab__get(seen, st.st_ino))
		return 0;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct ns_ref *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	if (!socktab__put(seen, st.st_ino, &one))
		return 0;
	(*v)[*n].inode = st.st_ino;
	snprintf((*v)[*n].path, sizeof((*v)[*n].path), "%s", path);
	(*n)++;
	return 0;
}

/*
 * Every namespace a process is in, and every one that ip-netns(8) keeps
 * mounted: those may hold nothing but time-wait sockets, whose processes
 * are gone.
 */
static int ns_list(struct ns_ref **v, size_t *n)
{
	static const char *const mounted[] = {"/run/netns", "/var/run/netns"};
	struct socktab *seen = socktab__new(MAX_NETNS, 1);
	char path[PATH_MAX];
	struct dirent *de;
	size_t cap = 0;
	int err = 0;
	DIR *d;

	*v = NULL;
	*n = 0;
	if (!seen)
		return -ENOMEM;
	/* Mounts first: a namespace is opened by the first path found for
	 * it, and a process's may be gone by then (its namespace with it,
	 * unless a mount keeps it), which lost a whole namespace's sockets. */
	for (size_t i = 0; !err && i < sizeof(mounted) / sizeof(mounted[0]); i++) {
		d = opendir(mounted[i]);
		if (!d)
			continue;
		while (!err && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", mounted[i], de->d_name);
			err = ns_add(v, n, &cap, seen, path);
		}
		closedir(d);
	}
	d = err ? NULL : opendir("/proc");
	if (!d) {
		err = err ? err : -errno;
		goto out;
	}
	while (!err && (de = readdir(d))) {
		if (!all_digits(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", de->d_name);
		err = ns_add(v, n, &cap, seen, path);
	}
	closedir(d);
out:
	socktab__free(seen);
	if (err) {
		free(*v);
		*v = NULL;
		*n = 0;
	}
	return err;
}

/* ---- who holds which socket, as ss -p finds out ---- */

static void owners_scan(struct socktab *inode_pid)
{
	char path[PATH_MAX], link[64];
	struct dirent *de, *fe;
	DIR *d, *fd;

	d = opendir("/proc");
	if (!d)
		return;
	while ((de = readdir(d))) {
		__u32 pid;

		if (!all_digits(de->d_name))
			continue;
		pid = strtoul(de->d_name, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%s/fd", de->d_name);
		fd = opendir(path);
		if (!fd)
			continue;	/* gone, or a kernel thread */
		while ((fe = readdir(fd))) {
			unsigned long long ino;
			ssize_t n;

			if (fe->d_name[0] == '.')
				continue;
			n = readlinkat(dirfd(fd), fe->d_name, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			/* A socket shared across fork() is named after the
			 * first process that shows it, as ss does. */
			if (sscanf(link, "socket:[%llu]", &ino) == 1 && ino &&
			    !socktab__get(inode_pid, ino))
				socktab__put(inode_pid, ino, &pid);
		}
		closedir(fd);
	}
	closedir(d);
}

/*
 * /proc/PID/stat has the start time in clock ticks of CLOCK_BOOTTIME; the
 * BPF side reads task->group_leader->start_time, CLOCK_MONOTONIC in ns.
 * Subtracting today's offset between the two clocks is exact unless the
 * host was suspended since the process started; the tick leaves 10 ms.
 */
static bool owner_read(const struct dump_ctx *c, __u32 pid, struct pt_owner *o)
{
	char path[64], buf[1024], *p;
	unsigned long long ticks;
	ssize_t n;
	int fd;

	memset(o, 0, sizeof(*o));
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			 &ticks) != 1)
		return false;
	o->pid = o->tid = pid;
	o->start_ns = ticks * (1000000000ULL / c->ticks_per_s);
	o->start_ns = o->start_ns > c->boot_offset_ns ? o->start_ns - c->boot_offset_ns : 0;
	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, o->comm, sizeof(o->comm) - 1);
		close(fd);
		if (n > 0 && o->comm[n - 1] == '\n')
			o->comm[n - 1] = '\0';
	}
	return true;
}

static bool owner_of(struct dump_ctx *c, __u32 inode, struct pt_owner *o)
{
	struct pt_owner *cached;
	__u32 *pid;

	if (!c->inode_pid || !inode || !(pid = socktab__get(c->inode_pid, inode)))
		return false;
	cached = socktab__get(c->pid_owner, *pid);
	if (cached) {
		*o = *cached;
		return o->pid != 0;
	}
	if (!owner_read(c, *pid, o))
		memset(o, 0, sizeof(*o));	/* remembered as unknown */
	socktab__put(c->pid_owner, *pid, o);
	return o->pid != 0;
}

/* ---- the dumps ---- */

/* One table of a dump: one protocol of one family of one namespace. */
struct table {
	struct dump_ctx *c;
	const struct ns_ref *ns;
	const struct ns_job *j;
	__u8 proto;
};

static int deliver(void *ctx, const struct inet_diag_msg *m)
{
	const struct table *t = ctx;
	struct dump_ctx *c = t->c;
	const struct ns_ref *ns = t->ns;
	const struct ns_job *j = t->j;
	__u8 proto = t->proto;
	struct pt_event ev = {.type = PT_EV_PORT, .kind = PT_PORT_EXISTING};
	size_t alen = m->idiag_family == AF_INET ? 4 : 16;

	ev.ts_ns = c->now_ns;
	ev.sk.cookie = m->id.idiag_cookie[0] | (__u64)m->id.idiag_cookie[1] << 32;
	ev.sk.netns = ns->inode;
	ev.sk.family = m->idiag_family;
	ev.sk.proto = proto;
	ev.sk.lport = ntohs(m->id.idiag_sport);
	ev.sk.rport = ntohs(m->id.idiag_dport);
	ev.sk.range_lo = j->range_lo;
	ev.sk.range_hi = j->range_hi;
	memcpy(ev.sk.laddr, m->id.idiag_src, alen);
	memcpy(ev.sk.raddr, m->id.idiag_dst, alen);
	ev.newstate = proto == IPPROTO_TCP ? m->idiag_state : TCP_CLOSE;
	if ((j->reserved[ev.sk.lport / 64] >> (ev.sk.lport % 64)) & 1)
		ev.flags |= PT_F_RESERVED;
	if (proto == IPPROTO_TCP && m->idiag_timer == DIAG_TIMER_TW)
		ev.latency_ns = (__u64)m->idiag_expires * 1000000;
	if ((c->flags & SOCKDIAG_OWNERS) && owner_of(c, m->idiag_inode, &ev.owner))
		ev.flags |= PT_F_OWNER_KNOWN;
	return c->fn(c->ctx, &ev);
}

/*
 * Send request r (NLM_F_DUMP in flags for a dump) on sock and hand each
 * socket the kernel answers with to msg(), until the dump is done or, for
 * a request of one socket, after its answer. msg's result, 0, or -errno
 * (-ENOENT: no such socket, or no such table).
 */
static int diag_ask(int sock, char *buf, __u32 seq, __u16 flags, const struct inet_diag_req_v2 *r,
		    int (*msg)(void *ctx, const struct inet_diag_msg *m), void *ctx)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh = {
			.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | flags,
			.nlmsg_seq = seq,
		},
		.r = *r,
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

	if (sendto(sock, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(sock, buf, RECV_BUF, 0);
		struct nlmsghdr *h;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			int err;

			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				/* A dump that failed half-way says so here. */
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) &&
				    *(int *)NLMSG_DATA(h) < 0)
					return *(int *)NLMSG_DATA(h);
				return 0;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EIO;
				return e->error ? e->error : -EIO;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				continue;
			err = msg(ctx, NLMSG_DATA(h));
			if (err || !(flags & NLM_F_DUMP))
				return err;
		}
	}
}

/* One protocol of one family of one namespace; fn's result, 0 or -errno. */
static int dump_one(struct dump_ctx *c, const struct ns_ref *ns, const struct ns_job *j, __u8 family,
		    __u8 proto)
{
	struct inet_diag_req_v2 r = {
		.sdiag_family = family,
		.sdiag_protocol = proto,
		.idiag_states = ~0u,	/* TIME_WAIT and SYN_RECV too */
	};
	struct table t = {.c = c, .ns = ns, .j = j, .proto = proto};

	return diag_ask(j->sock, c->buf, ++c->seq, NLM_F_DUMP, &r, deliver, &t);
}

static int dump_ns(struct dump_ctx *c, const struct ns_ref *ns, struct ns_job *j)
{
	static const struct {
		__u8 family, proto;
	} kinds[] = {
		{AF_INET, IPPROTO_TCP},
		{AF_INET6, IPPROTO_TCP},
		{AF_INET, IPPROTO_UDP},
		{AF_INET6, IPPROTO_UDP},
	};
	int err;

	err = ns_open(ns->path, j);
	if (err) {
		/* Gone since it was listed: nothing of it to report. */
		if (err != -ENOENT && err != -ESRCH)
			p_warn("socket table of netns %u (%s): %s", ns->inode, ns->path, strerror(-err));
		if (j->sock >= 0)
			close(j->sock);
		return 0;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		err = dump_one(c, ns, j, kinds[i].family, kinds[i].proto);
		/* A kernel without IPv6 or udp_diag has no such table. */
		if (err == -ENOENT || err == -EAFNOSUPPORT || err == -EOPNOTSUPP)
			err = 0;
		if (err)
			break;
	}
	close(j->sock);
	j->sock = -1;
	return err;
}

int sockdiag__dump(unsigned int flags, pt_event_fn fn, void *ctx)
{
	struct dump_ctx c = {.flags = flags, .fn = fn, .ctx = ctx};
	struct ns_ref *ns = NULL;
	struct ns_job *job = NULL;
	size_t n = 0;
	int err;

	c.ticks_per_s = sysconf(_SC_CLK_TCK);
	if (c.ticks_per_s <= 0)
		c.ticks_per_s = 100;
	c.buf = malloc(RECV_BUF);
	job = malloc(sizeof(*job));
	if (!c.buf || !job) {
		err = -ENOMEM;
		goto cleanup;
	}
	if (flags & SOCKDIAG_OWNERS) {
		c.inode_pid = socktab__new(MAX_SOCKETS, sizeof(__u32));
		c.pid_owner = socktab__new(MAX_SOCKETS, sizeof(struct pt_owner));
		if (!c.inode_pid || !c.pid_owner) {
			err = -ENOMEM;
			goto cleanup;
		}
		owners_scan(c.inode_pid);
	}
	err = ns_list(&ns, &n);
	if (err)
		goto cleanup;
	c.now_ns = run__now_ns(CLOCK_MONOTONIC);
	c.boot_offset_ns = run__now_ns(CLOCK_BOOTTIME) - c.now_ns;
	for (size_t i = 0; i < n && !err; i++)
		err = dump_ns(&c, &ns[i], job);
cleanup:
	socktab__free(c.inode_pid);
	socktab__free(c.pid_owner);
	free(c.buf);
	free(job);
	free(ns);
	return err;
}

int sockdiag__snapshot(pt_event_fn fn, void *ctx)
{
	return sockdiag__dump(SOCKDIAG_OWNERS, fn, ctx);
}

/* The path of the namespace with this inode number, or -ENOENT. */
static int ns_find(__u32 netns, char *path, size_t len)
{
	struct ns_ref *ns;
	size_t n;
	int err = ns_list(&ns, &n);

	if (err)
		return err;
	err = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (ns[i].inode == netns) {
			snprintf(path, len, "%s", ns[i].path);
			err = 0;
			break;
		}
	}
	free(ns);
	return err;
}

int sockdiag__namespaces(__u32 **v, size_t *n)
{
	struct ns_ref *ns;
	int err = ns_list(&ns, n);

	*v = NULL;
	if (err)
		return err;
	*v = malloc((*n ? *n : 1) * sizeof(**v));
	if (!*v) {
		free(ns);
		return -ENOMEM;
	}
	for (size_t i = 0; i < *n; i++)
		(*v)[i] = ns[i].inode;
	free(ns);
	return 0;
}

int sockdiag__netns_ports(__u32 netns, __u16 *lo, __u16 *hi, __u64 *reserved)
{
	struct ns_job *j = malloc(sizeof(*j));
	char path[PATH_MAX];
	int err;

	if (!j)
		return -ENOMEM;
	j->sock = -1;
	err = ns_find(netns, path, sizeof(path));
	if (!err)
		err = ns_open(path, j);
	if (j->sock >= 0)
		close(j->sock);
	if (!err) {
		*lo = j->range_lo;
		*hi = j->range_hi;
		if (reserved)
			memcpy(reserved, j->reserved, sizeof(j->reserved));
	}
	free(j);
	return err;
}

static int take_cookie(void *ctx, const struct inet_diag_msg *m)
{
	*(__u64 *)ctx = m->id.idiag_cookie[0] | (__u64)m->id.idiag_cookie[1] << 32;
	return 0;
}

/*
 * The socket on sk's addresses and ports now, asked for on its own (not a
 * dump): its cookie in *found, 0 when there is none; 0 or -errno.
 */
static int lookup_one(int sock, __u32 seq, const struct pt_sock *sk, char *buf, __u64 *found)
{
	struct inet_diag_req_v2 r = {
		.sdiag_family = sk->family,
		.sdiag_protocol = sk->proto,
		.idiag_states = ~0u,
		.id = {
			.idiag_sport = htons(sk->lport),
			.idiag_dport = htons(sk->rport),
			.idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE},
		},
	};
	size_t alen = sk->family == AF_INET ? 4 : 16;
	int err;

	memcpy(r.id.idiag_src, sk->laddr, alen);
	memcpy(r.id.idiag_dst, sk->raddr, alen);
	*found = 0;
	err = diag_ask(sock, buf, seq, 0, &r, take_cookie, found);
	return err == -ENOENT ? 0 : err;
}

int sockdiag__lookup(__u32 netns, const struct pt_sock *socks, size_t n, __u64 *found)
{
	struct ns_job *j = malloc(sizeof(*j));
	char path[PATH_MAX], *buf = malloc(RECV_BUF);
	int err;

	if (!j || !buf) {
		err = -ENOMEM;
		goto out;
	}
	j->sock = -1;
	err = ns_find(netns, path, sizeof(path));
	if (!err)
		err = ns_open(path, j);
	for (size_t i = 0; !err && i < n; i++)
		err = lookup_one(j->sock, (__u32)i + 1, &socks[i], buf, &found[i]);
	if (j->sock >= 0)
		close(j->sock);
out:
	free(buf);
	free(j);
	return err;
}
