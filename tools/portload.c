/*
 * portload - bounded loopback load generator for porttrace
 *
 * porttrace shows how the kernel hands out local ports. To look at the
 * interesting cases (ephemeral port exhaustion, bind-before-connect, UDP
 * autobind, TIME_WAIT reuse) something has to allocate ports on purpose and
 * at a known rate; that is this tool. A client opens TCP connections (or
 * sends one UDP datagram from a fresh socket) to ADDR PORT from -c threads
 * and counts the result of every attempt by errno name. A server mode gives
 * the client something to talk to.
 *
 * Every run is bounded: it ends after --duration (default 10 s, at most one
 * hour) or after --count attempts, whichever comes first, or on SIGINT or
 * SIGTERM. A one-line summary (text or --json) is printed in every case.
 * No blocking call waits for more than SLICE_NS before the stop flag and the
 * deadline are checked again. Connection attempts still in progress when the
 * run ends are abandoned and counted as EINPROGRESS.
 *
 * Only point it at addresses you own; it is meant for 127.0.0.0/8 and ::1,
 * ideally inside a throwaway network namespace:
 *
 *   ip netns add pl && ip netns exec pl ip link set lo up
 *
 *   # RST storm: connect() throughput without TIME_WAIT build-up
 *   ip netns exec pl portload --server -c 2 -d 4 127.0.0.1 8080 &
 *   ip netns exec pl portload -c 2 -d 3 --close rst 127.0.0.1 8080
 *
 *   # exhaust a 4-port range: 4 connections are held, 2 get EADDRNOTAVAIL
 *   ip netns exec pl sysctl -w net.ipv4.ip_local_port_range="40000 40003"
 *   ip netns exec pl portload -c 6 -n 6 --hold 2000 127.0.0.1 8080
 *
 *   # UDP autobind, IPv6, bind-before-connect with IP_BIND_ADDRESS_NO_PORT
 *   ip netns exec pl portload --udp -r 1000 -d 2 127.0.0.1 9000
 *   ip netns exec pl portload --bind --no-port -n 100 ::1 8080
 *
 *   ip netns del pl
 *
 * Exit status: 0 when the run completed (failed attempts are results, not
 * tool failures), 1 when setup failed (e.g. the server cannot bind), 2 on a
 * usage error.
 *
 * Build: gcc -O2 -g -Wall -Wextra -Werror -pthread -o portload tools/portload.c
 */
#define _GNU_SOURCE
#include <argp.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC	1000000000LL
#define NSEC_PER_MSEC	1000000LL
/* Longest any thread blocks before rechecking the stop flag and deadline. */
#define SLICE_NS	(100 * NSEC_PER_MSEC)
/* Pause after a failed attempt so persistent errors do not spin a CPU. */
#define RETRY_NS	NSEC_PER_MSEC
/* Pacing never bursts to catch up on more than this much lost time. */
#define MAX_LAG_NS	NSEC_PER_SEC

/* Limits are stringified into the usage messages, so no suffixes. */
#define MAX_CONCURRENCY	4096
#define MIN_DURATION	0.001
#define MAX_DURATION	3600
#define MAX_RATE	10000000
#define MAX_HOLD_MS	3600000
#define LISTEN_BACKLOG	4096
#define THREAD_STACK	(64 * 1024)
/* Linux errno values stay well below this; anything else lands in slot 0. */
#define ERRNO_SLOTS	256

#define STR(x)		#x
#define XSTR(x)		STR(x)
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

enum {
	OPT_HOLD = 0x100,
	OPT_CLOSE,
	OPT_WRITE,
	OPT_UDP,
	OPT_BIND,
	OPT_NO_PORT,
	OPT_SERVER,
	OPT_JSON,
	OPT_PRINT_PORTS,
};

struct options {
	unsigned int concurrency;
	unsigned long long count;	/* 0: bounded by duration only */
	int64_t duration_ns;
	unsigned long long rate;	/* attempts/s, all threads; 0: unpaced */
	unsigned long long hold_ms;
	bool close_rst;
	bool write;
	bool udp;
	bool bind;
	bool no_port;
	bool server;
	bool json;
	bool quiet;
	bool print_ports;

	/* First option seen that --server resp. --udp cannot honour. */
	const char *client_opt;
	const char *tcp_opt;

	/* Positional arguments, validated once all options are known. */
	unsigned int nargs;
	const char *addr_arg;
	const char *port_arg;

	char addr[INET6_ADDRSTRLEN];	/* ADDR in canonical form */
	unsigned int port;
	struct sockaddr_storage peer;	/* ADDR:PORT */
	struct sockaddr_storage local;	/* --bind address, port 0 */
	socklen_t salen;
};

static struct options opts = {
	.concurrency = 1,
	.duration_ns = 10 * NSEC_PER_SEC,
};

/* 0 while running; the signal number after SIGINT/SIGTERM; -1 on abort. */
static atomic_int stop_flag;

struct run {
	int64_t start;
	int64_t deadline;
	atomic_ullong issued;	/* attempts handed out, for --count */
	int lfd;		/* server socket */
	unsigned int port;	/* actual port, differs from opts for server 0 */
};

/* Per-thread, merged after join so the hot loop shares no cache lines. */
struct stats {
	uint64_t attempted;
	uint64_t ok;		/* server: connections accepted / datagrams */
	uint64_t reset;		/* server: peer reset before EOF (--close rst) */
	uint64_t errors[ERRNO_SLOTS];
};

struct worker {
	pthread_t tid;
	unsigned int index;
	struct run *run;
	struct stats stats;
};

static const char *const errno_names[] = {
	[EPERM]		= "EPERM",
	[EINTR]		= "EINTR",
	[EBADF]		= "EBADF",
	[EAGAIN]	= "EAGAIN",
	[ENOMEM]	= "ENOMEM",
	[EACCES]	= "EACCES",
	[EINVAL]	= "EINVAL",
	[ENFILE]	= "ENFILE",
	[EMFILE]	= "EMFILE",
	[EPIPE]		= "EPIPE",
	[EPROTO]	= "EPROTO",
	[EAFNOSUPPORT]	= "EAFNOSUPPORT",
	[EADDRINUSE]	= "EADDRINUSE",
	[EADDRNOTAVAIL]	= "EADDRNOTAVAIL",
	[ENETDOWN]	= "ENETDOWN",
	[ENETUNREACH]	= "ENETUNREACH",
	[ECONNABORTED]	= "ECONNABORTED",
	[ECONNRESET]	= "ECONNRESET",
	[ENOBUFS]	= "ENOBUFS",
	[EISCONN]	= "EISCONN",
	[ENOTCONN]	= "ENOTCONN",
	[ETIMEDOUT]	= "ETIMEDOUT",
	[ECONNREFUSED]	= "ECONNREFUSED",
	[EHOSTUNREACH]	= "EHOSTUNREACH",
	[EALREADY]	= "EALREADY",
	[EINPROGRESS]	= "EINPROGRESS",
};

static const char *errno_name(int err, char *buf, size_t len)
{
	if (err == 0)
		return "EOTHER";
	if (err > 0 && (size_t)err < ARRAY_SIZE(errno_names) && errno_names[err])
		return errno_names[err];
	snprintf(buf, len, "E%d", err);
	return buf;
}

static void count_error(struct stats *st, int err)
{
	st->errors[err > 0 && err < ERRNO_SLOTS ? err : 0]++;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static int64_t min_i64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static bool run_over(const struct run *run)
{
	return atomic_load_explicit(&stop_flag, memory_order_relaxed) ||
	       now_ns() >= run->deadline;
}

/*
 * Sleep until @when (CLOCK_MONOTONIC ns), in slices so a stop request is seen
 * quickly and never past the deadline. Returns false when the run is over.
 */
static bool sleep_until(const struct run *run, int64_t when)
{
	for (;;) {
		int64_t now = now_ns(), t;
		struct timespec ts;

		if (atomic_load_explicit(&stop_flag, memory_order_relaxed) ||
		    now >= run->deadline)
			return false;
		if (now >= when)
			return true;
		t = min_i64(min_i64(when, now + SLICE_NS), run->deadline);
		ts.tv_sec = t / NSEC_PER_SEC;
		ts.tv_nsec = t % NSEC_PER_SEC;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
}

/* poll() timeout for the next slice, cut short at the deadline. */
static int slice_ms(const struct run *run)
{
	int64_t left = min_i64(run->deadline - now_ns(), SLICE_NS);

	return left <= 0 ? 0 : (int)((left + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC);
}

/* Claim one attempt from the --count budget; relaxed is enough for a tally. */
static bool take_ticket(struct run *run)
{
	if (!opts.count)
		return true;
	return atomic_fetch_add_explicit(&run->issued, 1,
					 memory_order_relaxed) < opts.count;
}

/* Bind-before-connect; returns 0 or an errno value. */
static int bind_local(int fd)
{
	const int one = 1;

	if (!opts.bind)
		return 0;
	/*
	 * Without this, bind() must pick a port unique for every destination;
	 * with it the port is chosen at connect() time like for unbound sockets.
	 * SOL_IP options are accepted on AF_INET6 sockets too.
	 */
	if (opts.no_port &&
	    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		       sizeof(one)) < 0)
		return errno;
	if (bind(fd, (const struct sockaddr *)&opts.local, opts.salen) < 0)
		return errno;
	return 0;
}

/*
 * The socket is non-blocking so the wait can be sliced: on loopback the
 * handshake is normally complete when connect() returns EINPROGRESS, so this
 * costs one poll(). A SYN dropped by a full listen queue is retried by the
 * kernel for up to minutes, hence the deadline check.
 */
static int tcp_connect(int fd, const struct run *run)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int n, err;

	if (connect(fd, (const struct sockaddr *)&opts.peer, opts.salen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	for (;;) {
		n = poll(&pfd, 1, slice_ms(run));
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR)
			return errno;
		if (run_over(run))
			return EINPROGRESS;
	}
	if (!(pfd.revents & (POLLERR | POLLHUP)))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err ? err : ECONNRESET;
}

static unsigned int sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/*
 * --print-ports: say which local address and port the kernel gave a client
 * socket, so a test can match it against what a tracer saw.
 */
static void print_local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	const void *a = &((struct sockaddr_in *)&ss)->sin_addr;

	if (!opts.print_ports || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	inet_ntop(ss.ss_family, a, addr, sizeof(addr));
	/* One printf() per line: stdio locks the stream for each call. */
	printf("local %s %s %u\n", opts.udp ? "udp" : "tcp", addr,
	       sockaddr_port(&ss));
}

static void hold(const struct run *run)
{
	int64_t ns = (int64_t)opts.hold_ms * NSEC_PER_MSEC;

	if (ns)
		sleep_until(run, now_ns() + ns);
}

static void close_socket(int fd, bool rst)
{
	/* A zero linger timeout makes close() send RST and skip TIME_WAIT. */
	static const struct linger abort_linger = { .l_onoff = 1, .l_linger = 0 };

	if (rst)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_linger,
			   sizeof(abort_linger));
	close(fd);
}

/* One TCP connection attempt; returns 0 or the errno that ended it. */
static int tcp_attempt(const struct run *run)
{
	int fd, err;

	fd = socket(opts.peer.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	err = bind_local(fd);
	if (!err)
		err = tcp_connect(fd, run);
	if (!err)
		print_local(fd);
	if (!err && opts.write && send(fd, "x", 1, MSG_NOSIGNAL) < 0)
		err = errno;
	if (!err)
		hold(run);
	close_socket(fd, !err && opts.close_rst);
	return err;
}

/* One datagram from a fresh socket; sendto() autobinds the local port. */
static int udp_attempt(const struct run *run)
{
	int fd, err;

	fd = socket(opts.peer.ss_family,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	err = bind_local(fd);
	if (!err && sendto(fd, "x", 1, 0, (const struct sockaddr *)&opts.peer,
			   opts.salen) < 0)
		err = errno;
	if (!err)
		print_local(fd);
	if (!err)
		hold(run);
	close(fd);
	return err;
}

static void *client_thread(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	struct stats st = { 0 };
	int64_t interval = 0, next = run->start;
	int err;

	if (opts.rate) {
		interval = (int64_t)((double)opts.concurrency * NSEC_PER_SEC /
				     (double)opts.rate);
		/* Stagger the threads so the combined flow is even. */
		next += interval * w->index / opts.concurrency;
	}
	for (;;) {
		if (opts.rate) {
			if (!sleep_until(run, next))
				break;
			next += interval;
			if (now_ns() - next > MAX_LAG_NS)
				next = now_ns();
		} else if (run_over(run)) {
			break;
		}
		if (!take_ticket(run))
			break;
		st.attempted++;
		err = opts.udp ? udp_attempt(run) : tcp_attempt(run);
		if (!err) {
			st.ok++;
			continue;
		}
		count_error(&st, err);
		if (!sleep_until(run, now_ns() + RETRY_NS))
			break;
	}
	w->stats = st;
	return NULL;
}

/*
 * Read and discard until EOF. Reads block for at most one slice (SO_RCVTIMEO
 * is inherited from the listener), so a held connection cannot outlive the run.
 */
static void drain(int fd, const struct run *run, struct stats *st)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n == 0)
			return;
		if (errno == EAGAIN || errno == EINTR) {
			if (run_over(run))
				return;
			continue;
		}
		/* The normal end of a connection closed with --close rst. */
		if (errno == ECONNRESET)
			st->reset++;
		else
			count_error(st, errno);
		return;
	}
}

static void *tcp_server_thread(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	struct stats st = { 0 };
	int fd;

	while (!run_over(run)) {
		/* Returns EAGAIN after one slice (SO_RCVTIMEO) when idle. */
		fd = accept4(run->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			st.ok++;
			drain(fd, run, &st);
			close(fd);
		} else if (errno != EAGAIN && errno != EINTR) {
			count_error(&st, errno);
			/* EMFILE leaves the connection queued: don't spin. */
			sleep_until(run, now_ns() + RETRY_NS);
		}
	}
	w->stats = st;
	return NULL;
}

static void *udp_server_thread(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	struct stats st = { 0 };
	char buf[2048];

	while (!run_over(run)) {
		if (recv(run->lfd, buf, sizeof(buf), 0) >= 0) {
			st.ok++;
		} else if (errno != EAGAIN && errno != EINTR) {
			count_error(&st, errno);
			sleep_until(run, now_ns() + RETRY_NS);
		}
	}
	w->stats = st;
	return NULL;
}

static void format_endpoint(char *buf, size_t len, unsigned int port)
{
	if (opts.peer.ss_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", opts.addr, port);
	else
		snprintf(buf, len, "%s:%u", opts.addr, port);
}

/*
 * Open the server socket and announce it. Accepting threads block in
 * accept()/recv() with a receive timeout of one slice rather than polling:
 * the kernel then wakes a single thread per connection, and the timeout
 * bounds how late a thread notices the end of the run.
 */
static int server_open(struct run *run)
{
	const struct timeval tv = { .tv_usec = SLICE_NS / 1000 };
	const int one = 1;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char endpoint[INET6_ADDRSTRLEN + 8];
	const char *what = "socket";
	int fd;

	fd = socket(opts.peer.ss_family,
		    (opts.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	what = "setsockopt";
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	what = "bind";
	if (bind(fd, (const struct sockaddr *)&opts.peer, opts.salen) < 0)
		goto fail;
	what = "listen";
	if (!opts.udp && listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	what = "getsockname";
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		goto fail;

	run->lfd = fd;
	run->port = sockaddr_port(&ss);
	/* Scripts wait for this line before starting clients. */
	printf("listening %s %u\n", opts.addr, run->port);
	fflush(stdout);
	return 0;

fail:
	format_endpoint(endpoint, sizeof(endpoint), opts.port);
	fprintf(stderr, "portload: %s %s: %s\n", what, endpoint, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * Each thread keeps at most one socket open; with a large -c the usual soft
 * limit of 1024 would turn a port test into an EMFILE test.
 */
static void raise_fd_limit(void)
{
	rlim_t need = (rlim_t)opts.concurrency + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max >= need ? need : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need && !opts.quiet)
		fprintf(stderr, "portload: warning: descriptor limit %llu is "
			"below %llu, expect EMFILE\n",
			(unsigned long long)rl.rlim_cur,
			(unsigned long long)need);
}

static void on_signal(int sig)
{
	atomic_store_explicit(&stop_flag, sig, memory_order_relaxed);
}

static int install_signal_handlers(void)
{
	/*
	 * No SA_RESTART is needed: workers never see these signals (see
	 * main()). SA_RESETHAND lets a second Ctrl-C kill a stuck run.
	 */
	struct sigaction sa = {
		.sa_handler = on_signal,
		.sa_flags = SA_RESETHAND,
	};

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0) {
		fprintf(stderr, "portload: sigaction: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Returns how many threads were started; all of them on success. */
static unsigned int start_workers(struct run *run, struct worker *w)
{
	void *(*fn)(void *) = client_thread;
	pthread_attr_t attr;
	unsigned int i;
	int err;

	if (opts.server)
		fn = opts.udp ? udp_server_thread : tcp_server_thread;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (i = 0; i < opts.concurrency; i++) {
		w[i].index = i;
		w[i].run = run;
		err = pthread_create(&w[i].tid, &attr, fn, &w[i]);
		if (err) {
			fprintf(stderr, "portload: starting thread %u: %s\n",
				i + 1, strerror(err));
			atomic_store(&stop_flag, -1);
			break;
		}
	}
	pthread_attr_destroy(&attr);
	return i;
}

static void merge_stats(struct stats *dst, const struct stats *src)
{
	int i;

	dst->attempted += src->attempted;
	dst->ok += src->ok;
	dst->reset += src->reset;
	for (i = 0; i < ERRNO_SLOTS; i++)
		dst->errors[i] += src->errors[i];
}

static uint64_t total_errors(const struct stats *st)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; i < ERRNO_SLOTS; i++)
		sum += st->errors[i];
	return sum;
}

static void print_errors(const struct stats *st, bool json)
{
	const char *sep = "";
	char buf[16];
	int i;

	for (i = 0; i < ERRNO_SLOTS; i++) {
		if (!st->errors[i])
			continue;
		printf(json ? "%s\"%s\":%" PRIu64 : "%s%s=%" PRIu64, sep,
		       errno_name(i, buf, sizeof(buf)), st->errors[i]);
		sep = json ? "," : " ";
	}
}

static void print_json(const struct run *run, const struct stats *st,
		       double secs)
{
	uint64_t events = opts.server ? st->ok : st->attempted;
	double rate = secs > 0 ? events / secs : 0;

	printf("{\"mode\":\"%s\",\"proto\":\"%s\",\"addr\":\"%s\",\"port\":%u,"
	       "\"concurrency\":%u,\"seconds\":%.3f,",
	       opts.server ? "server" : "client", opts.udp ? "udp" : "tcp",
	       opts.addr, run->port, opts.concurrency, secs);
	if (opts.server)
		printf("\"accepted\":%" PRIu64 ",\"reset\":%" PRIu64 ",",
		       st->ok, st->reset);
	else
		printf("\"attempted\":%" PRIu64 ",\"ok\":%" PRIu64
		       ",\"failed\":%" PRIu64 ",",
		       st->attempted, st->ok, st->attempted - st->ok);
	printf("\"rate\":%.1f,\"errors\":{", rate);
	print_errors(st, true);
	printf("}}\n");
}

static void print_text(const struct run *run, const struct stats *st,
		       double secs)
{
	char endpoint[INET6_ADDRSTRLEN + 8];
	const char *proto = opts.udp ? "udp" : "tcp";

	format_endpoint(endpoint, sizeof(endpoint), run->port);
	if (opts.server)
		printf("portload: server %s %s concurrency=%u duration=%.2fs "
		       "accepted=%" PRIu64 " reset=%" PRIu64 " rate=%.1f/s\n",
		       proto, endpoint, opts.concurrency, secs, st->ok,
		       st->reset, secs > 0 ? st->ok / secs : 0);
	else
		printf("portload: %s %s concurrency=%u duration=%.2fs "
		       "attempted=%" PRIu64 " ok=%" PRIu64 " failed=%" PRIu64
		       " rate=%.1f/s\n",
		       proto, endpoint, opts.concurrency, secs, st->attempted,
		       st->ok, st->attempted - st->ok,
		       secs > 0 ? st->attempted / secs : 0);
	if (total_errors(st)) {
		printf("portload: errors ");
		print_errors(st, false);
		printf("\n");
	}
}

static void print_start(void)
{
	char endpoint[INET6_ADDRSTRLEN + 8];

	format_endpoint(endpoint, sizeof(endpoint), opts.port);
	fprintf(stderr, "portload: %s %s %s concurrency=%u duration=%.2fs",
		opts.server ? "server" : "client", opts.udp ? "udp" : "tcp",
		endpoint, opts.concurrency, opts.duration_ns / 1e9);
	if (!opts.server)
		fprintf(stderr,
			" count=%llu rate=%llu hold=%llums close=%s%s%s%s",
			opts.count, opts.rate, opts.hold_ms,
			opts.close_rst ? "rst" : "fin",
			opts.write ? " write" : "", opts.bind ? " bind" : "",
			opts.no_port ? " no-port" : "");
	fprintf(stderr, "\n");
}

static void print_stop_reason(const struct run *run)
{
	int sig = atomic_load(&stop_flag);
	const char *why = "duration";

	if (sig > 0)
		why = sig == SIGINT ? "SIGINT" : "SIGTERM";
	else if (opts.count && atomic_load(&run->issued) >= opts.count)
		why = "count";
	fprintf(stderr, "portload: stopped by %s\n", why);
}

static void report(const struct run *run, const struct worker *w,
		   int64_t elapsed)
{
	struct stats total = { 0 };
	double secs = elapsed / 1e9;
	unsigned int i;

	for (i = 0; i < opts.concurrency; i++)
		merge_stats(&total, &w[i].stats);
	if (!opts.quiet)
		print_stop_reason(run);
	if (opts.json)
		print_json(run, &total, secs);
	else
		print_text(run, &total, secs);
	fflush(stdout);
}

/* ---- command line ---- */

static error_t usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("portload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EINVAL;
}

static error_t bad_value(const char *what, const char *arg, const char *expect)
{
	return usage_error("invalid %s '%s' (expected %s)", what, arg, expect);
}

/*
 * Strict unsigned parse: strtoull() alone would accept " 7", "-1" (wrapping
 * to a huge value), "7x" and out-of-range input.
 */
static int parse_ull(const char *s, unsigned long long min,
		     unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, int64_t *out)
{
	char *end;
	double v;

	/* Rejects "inf", "nan", hex floats and leading signs or blanks. */
	if (!isdigit((unsigned char)*s) && *s != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < MIN_DURATION || v > MAX_DURATION)
		return -1;
	*out = (int64_t)(v * NSEC_PER_SEC + 0.5);
	return 0;
}

static int parse_addr(const char *s)
{
	struct sockaddr_in *peer4 = (struct sockaddr_in *)&opts.peer;
	struct sockaddr_in *local4 = (struct sockaddr_in *)&opts.local;
	struct sockaddr_in6 *peer6 = (struct sockaddr_in6 *)&opts.peer;
	struct sockaddr_in6 *local6 = (struct sockaddr_in6 *)&opts.local;

	/* --bind uses ADDR itself when it is loopback, the wildcard otherwise. */
	if (inet_pton(AF_INET, s, &peer4->sin_addr) == 1) {
		peer4->sin_family = AF_INET;
		peer4->sin_port = htons(opts.port);
		local4->sin_family = AF_INET;
		local4->sin_addr.s_addr = htonl(INADDR_ANY);
		if (ntohl(peer4->sin_addr.s_addr) >> 24 == IN_LOOPBACKNET)
			local4->sin_addr = peer4->sin_addr;
		opts.salen = sizeof(*peer4);
		inet_ntop(AF_INET, &peer4->sin_addr, opts.addr,
			  sizeof(opts.addr));
		return 0;
	}
	if (inet_pton(AF_INET6, s, &peer6->sin6_addr) == 1) {
		peer6->sin6_family = AF_INET6;
		peer6->sin6_port = htons(opts.port);
		local6->sin6_family = AF_INET6;
		local6->sin6_addr = in6addr_any;
		if (IN6_IS_ADDR_LOOPBACK(&peer6->sin6_addr))
			local6->sin6_addr = peer6->sin6_addr;
		opts.salen = sizeof(*peer6);
		inet_ntop(AF_INET6, &peer6->sin6_addr, opts.addr,
			  sizeof(opts.addr));
		return 0;
	}
	return -1;
}

/* Cross-option checks, run once every option and argument has been seen. */
static error_t finish_args(void)
{
	unsigned long long port;

	if (opts.nargs != 2)
		return usage_error("expected ADDR PORT (see --help)");
	if (parse_ull(opts.port_arg, opts.server ? 0 : 1, 65535, &port))
		return bad_value("PORT", opts.port_arg,
				 opts.server ? "0..65535" : "1..65535");
	opts.port = port;
	if (parse_addr(opts.addr_arg))
		return bad_value("ADDR", opts.addr_arg,
				 "an IPv4 or IPv6 literal");
	if (opts.server && opts.client_opt)
		return usage_error("%s cannot be used with --server",
				   opts.client_opt);
	if (opts.udp && opts.tcp_opt)
		return usage_error("%s cannot be used with --udp", opts.tcp_opt);
	if (opts.no_port && !opts.bind)
		return usage_error("--no-port requires --bind");
	return 0;
}

static error_t parse_opt(int key, char *arg, struct argp_state *state)
{
	unsigned long long v;

	(void)state;
	switch (key) {
	case 'c':
		if (parse_ull(arg, 1, MAX_CONCURRENCY, &v))
			return bad_value("--concurrency", arg,
					 "1.." XSTR(MAX_CONCURRENCY));
		opts.concurrency = v;
		break;
	case 'n':
		if (parse_ull(arg, 0, UINT64_MAX, &opts.count))
			return bad_value("--count", arg, "a number >= 0");
		opts.client_opt = "--count";
		break;
	case 'd':
		if (parse_seconds(arg, &opts.duration_ns))
			return bad_value("--duration", arg,
					 XSTR(MIN_DURATION) ".." XSTR(MAX_DURATION)
					 " seconds");
		break;
	case 'r':
		if (parse_ull(arg, 0, MAX_RATE, &opts.rate))
			return bad_value("--rate", arg, "0.." XSTR(MAX_RATE));
		opts.client_opt = "--rate";
		break;
	case OPT_HOLD:
		if (parse_ull(arg, 0, MAX_HOLD_MS, &opts.hold_ms))
			return bad_value("--hold", arg,
					 "0.." XSTR(MAX_HOLD_MS) " ms");
		opts.client_opt = "--hold";
		break;
	case OPT_CLOSE:
		if (strcmp(arg, "fin") && strcmp(arg, "rst"))
			return bad_value("--close", arg, "fin or rst");
		opts.close_rst = !strcmp(arg, "rst");
		opts.client_opt = opts.tcp_opt = "--close";
		break;
	case OPT_WRITE:
		opts.write = true;
		opts.client_opt = opts.tcp_opt = "--write";
		break;
	case OPT_UDP:
		opts.udp = true;
		break;
	case OPT_BIND:
		opts.bind = true;
		opts.client_opt = "--bind";
		break;
	case OPT_NO_PORT:
		opts.no_port = true;
		opts.client_opt = "--no-port";
		break;
	case OPT_SERVER:
		opts.server = true;
		break;
	case OPT_JSON:
		opts.json = true;
		break;
	case 'q':
		opts.quiet = true;
		break;
	case OPT_PRINT_PORTS:
		opts.print_ports = true;
		opts.client_opt = "--print-ports";
		break;
	case ARGP_KEY_ARG:
		if (opts.nargs == 0)
			opts.addr_arg = arg;
		else if (opts.nargs == 1)
			opts.port_arg = arg;
		else
			return usage_error("unexpected argument '%s'", arg);
		opts.nargs++;
		break;
	case ARGP_KEY_END:
		return finish_args();
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static const struct argp_option argp_options[] = {
	{ "concurrency", 'c', "N", 0,
	  "Worker threads, 1..4096 (default 1); with --hold also the number of "
	  "connections held at once", 0 },
	{ "count", 'n', "N", 0,
	  "Total attempts (default 0: until the duration ends)", 0 },
	{ "duration", 'd', "SECONDS", 0,
	  "Stop after SECONDS, 0.001..3600, fractions allowed (default 10)", 0 },
	{ "rate", 'r', "N", 0,
	  "Target attempts per second over all threads (default 0: unpaced)", 0 },
	{ "hold", OPT_HOLD, "MS", 0,
	  "Keep each connection/socket open MS milliseconds (default 0)", 0 },
	{ "close", OPT_CLOSE, "fin|rst", 0,
	  "fin: plain close(); rst: SO_LINGER {1,0} so no TIME_WAIT is left "
	  "(default fin)", 0 },
	{ "write", OPT_WRITE, NULL, 0,
	  "Send 1 byte after connecting (TCP)", 0 },
	{ "udp", OPT_UDP, NULL, 0,
	  "UDP: sendto() 1 byte from a fresh unbound socket (autobind)", 0 },
	{ "bind", OPT_BIND, NULL, 0,
	  "Bind to port 0 before connect/sendto (to ADDR if it is loopback, "
	  "else to the wildcard address)", 0 },
	{ "no-port", OPT_NO_PORT, NULL, 0,
	  "With --bind: set IP_BIND_ADDRESS_NO_PORT first", 0 },
	{ "server", OPT_SERVER, NULL, 0,
	  "Listen on ADDR PORT (0: any port) and accept/receive with -c threads; "
	  "prints \"listening ADDR PORT\" when ready", 0 },
	{ "json", OPT_JSON, NULL, 0, "Print the summary as one JSON line", 0 },
	{ "print-ports", OPT_PRINT_PORTS, NULL, 0,
	  "Print \"local tcp|udp ADDR PORT\" for each socket that connected "
	  "(TCP) or sent (UDP)", 0 },
	{ "quiet", 'q', NULL, 0, "Print only the summary", 0 },
	{ 0 }
};

static const struct argp argp = {
	.options = argp_options,
	.parser = parse_opt,
	.args_doc = "ADDR PORT",
	.doc = "Bounded loopback TCP/UDP load generator to reproduce ephemeral "
	       "port exhaustion and to benchmark port allocation.\v"
	       "A run ends after --duration or --count attempts, whichever comes "
	       "first, or on SIGINT/SIGTERM, and always prints a summary with "
	       "failures counted by errno name. Exit status: 0 run completed, "
	       "1 setup failed, 2 usage error.",
};

int main(int argc, char **argv)
{
	struct run run = { .lfd = -1 };
	struct worker *workers = NULL;
	unsigned int i, started;
	sigset_t block, old;
	int64_t elapsed;
	int ret = 1;

	/* argp's own messages (unknown option, --help misuse) exit with 2 too. */
	argp_err_exit_status = 2;
	if (argp_parse(&argp, argc, argv, 0, NULL, NULL))
		return 2;

	run.port = opts.port;
	if (install_signal_handlers() < 0)
		goto out;
	raise_fd_limit();
	if (opts.server && server_open(&run) < 0)
		goto out;
	workers = calloc(opts.concurrency, sizeof(*workers));
	if (!workers) {
		fprintf(stderr, "portload: out of memory\n");
		goto out;
	}
	if (!opts.quiet)
		print_start();

	/*
	 * Workers inherit a mask with SIGINT/SIGTERM blocked, so the handler
	 * always runs in the main thread (in pthread_join()) and workers never
	 * see EINTR; they notice the flag within one slice.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	run.start = now_ns();
	run.deadline = run.start + opts.duration_ns;
	started = start_workers(&run, workers);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	for (i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);
	elapsed = now_ns() - run.start;
	if (started == opts.concurrency) {
		report(&run, workers, elapsed);
		ret = 0;
	}
out:
	free(workers);
	if (run.lfd >= 0)
		close(run.lfd);
	return ret;
}
