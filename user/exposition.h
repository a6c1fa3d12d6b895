/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * exposition: the latest built metrics text, served to Prometheus at
 * /metrics from libmicrohttpd's own thread and written to a textfile for
 * node_exporter's textfile collector.
 *
 * The reader of the ring buffer builds and publishes; a scrape never waits
 * on it for long and never makes it wait: a scrape copies the latest text
 * under a mutex held only for that copy. When the latest text is older
 * than EXPO_FRESH_NS, the scrape asks for a new one (exposition__wanted())
 * and waits up to EXPO_WAIT_MS for it before it serves what there is.
 */
#ifndef PT_EXPOSITION_H
#define PT_EXPOSITION_H

#include <stdbool.h>
#include <stddef.h>

#define EXPO_FRESH_NS 1000000000ULL	/* a scrape takes text up to 1 s old */
#define EXPO_WAIT_MS 1000

struct exposition;

/*
 * listen: "ADDR:PORT" to serve on (NULL: no server), textfile: the file to
 * replace (NULL: none). On failure says why on stderr (one line) and
 * returns NULL.
 */
struct exposition *exposition__new(const char *listen, const char *textfile);
void exposition__free(struct exposition *x);

/* A scrape is waiting for fresher text. */
bool exposition__wanted(struct exposition *x);

/* Take text (malloc()ed; freed here) as the latest; write the textfile
 * when write_file. 0, or -errno of the textfile write (said once). */
int exposition__publish(struct exposition *x, char *text, size_t len, bool write_file);

/* Parse "ADDR:PORT", "[V6ADDR]:PORT" or ":PORT" (loopback); 0 or -EINVAL. */
struct sockaddr_storage;
int exposition__parse_addr(const char *s, struct sockaddr_storage *ss);

#endif /* PT_EXPOSITION_H */
