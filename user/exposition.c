// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The listening socket is made here, not by libmicrohttpd, so that a port
 * in use or an address not on the host is one clear line at start-up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "exposition.h"
#include "log.h"
#include "options.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct exposition {
	struct MHD_Daemon *daemon;
	char *textfile;
	pthread_mutex_t lock;
	pthread_cond_t published;
	char *text;		/* under lock */
	size_t len;
	unsigned long long built_ns;	/* CLOCK_MONOTONIC; 0: never */
	unsigned long long generation;
	int wanted;		/* set by a scrape, under lock */
	bool file_warned;
};

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int exposition__parse_addr(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	unsigned long port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (!colon || options__parse_ulong(colon + 1, 1, 65535, &port))
		return -EINVAL;
	hl = colon - s;
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (!hl) {
		/* Loopback unless told otherwise: metrics say what runs here. */
		strcpy(host, "127.0.0.1");
	} else if (host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			return -EINVAL;
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return -EINVAL;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *body,
			     size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
	enum MHD_Result ret;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free((void *)body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req)
{
	static const char not_found[] = "porttrace serves /metrics only\n";
	struct exposition *x = cls;
	enum MHD_Result ret;
	char *copy;
	size_t len;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "", 0, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1,
			     MHD_RESPMEM_PERSISTENT);
	pthread_mutex_lock(&x->lock);
	if (!x->built_ns || mono_ns() - x->built_ns > EXPO_FRESH_NS) {
		unsigned long long gen = x->generation;
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += EXPO_WAIT_MS / 1000;
		until.tv_nsec += (EXPO_WAIT_MS % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		x->wanted = 1;
		while (x->generation == gen &&
		       pthread_cond_timedwait(&x->published, &x->lock, &until) != ETIMEDOUT)
			;
	}
	len = x->len;
	copy = len ? malloc(len) : NULL;
	if (copy)
		memcpy(copy, x->text, len);
	pthread_mutex_unlock(&x->lock);
	if (!copy)
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "", 0, MHD_RESPMEM_PERSISTENT);
	ret = reply(conn, MHD_HTTP_OK, copy, len, MHD_RESPMEM_MUST_FREE);
	return ret;
}

static int listen_on(const char *spec)
{
	struct sockaddr_storage ss;
	int fd, one = 1;

	if (exposition__parse_addr(spec, &ss)) {
		p_err("invalid --metrics '%s': expected ADDR:PORT, [ADDR]:PORT or :PORT", spec);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								       : sizeof(struct sockaddr_in)) ||
	    listen(fd, 16)) {
		p_err("serving metrics on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct exposition *exposition__new(const char *listen, const char *textfile)
{
	struct exposition *x = calloc(1, sizeof(*x));
	pthread_condattr_t ca;
	int fd;

	if (!x) {
		p_err("out of memory");
		return NULL;
	}
	pthread_mutex_init(&x->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->published, &ca);
	pthread_condattr_destroy(&ca);
	if (textfile && !(x->textfile = strdup(textfile))) {
		p_err("out of memory");
		goto fail;
	}
	/* The first write comes an interval later: say now if it cannot. */
	if (textfile) {
		char *dir = strdup(textfile), *slash = dir ? strrchr(dir, '/') : NULL;
		const char *d = !slash ? "." : slash == dir ? "/" : (*slash = '\0', dir);

		if (!dir || access(d, W_OK)) {
			p_err("cannot write metrics to %s: %s", textfile, dir ? strerror(errno) : "out of memory");
			free(dir);
			goto fail;
		}
		free(dir);
	}
	if (!listen)
		return x;
	fd = listen_on(listen);
	if (fd < 0)
		goto fail;
	x->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				     on_request, x, MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
	if (!x->daemon) {
		p_err("serving metrics on %s: libmicrohttpd did not start", listen);
		close(fd);
		goto fail;
	}
	return x;
fail:
	exposition__free(x);
	return NULL;
}

void exposition__free(struct exposition *x)
{
	if (!x)
		return;
	if (x->daemon)
		MHD_stop_daemon(x->daemon);
	pthread_cond_destroy(&x->published);
	pthread_mutex_destroy(&x->lock);
	free(x->text);
	free(x->textfile);
	free(x);
}

bool exposition__wanted(struct exposition *x)
{
	bool w;

	pthread_mutex_lock(&x->lock);
	w = x->wanted;
	pthread_mutex_unlock(&x->lock);
	return w;
}

/* The whole file or nothing: node_exporter reads it at any moment. */
static int write_textfile(const char *path, const char *text, size_t len)
{
	char tmp[PATH_MAX];
	size_t off = 0;
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < len && !err) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			off += n;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int exposition__publish(struct exposition *x, char *text, size_t len, bool write_file)
{
	int err = 0;

	if (write_file && x->textfile) {
		err = write_textfile(x->textfile, text, len);
		if (err && !x->file_warned)
			p_warn("writing metrics to %s: %s", x->textfile, strerror(-err));
		x->file_warned = err != 0;
	}
	pthread_mutex_lock(&x->lock);
	free(x->text);
	x->text = text;
	x->len = len;
	x->built_ns = mono_ns();
	x->generation++;
	x->wanted = 0;
	pthread_cond_broadcast(&x->published);
	pthread_mutex_unlock(&x->lock);
	return err;
}
