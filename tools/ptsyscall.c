// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * ptsyscall: the cost of syscalls that have nothing to do with sockets, in
 * ns per call, for make bench's host-tax row. While any syscall tracepoint
 * is attached, every syscall of every process takes the kernel's traced slow
 * path; this measures what that costs a process that never touches a
 * socket. Two loops, each timed on CLOCK_MONOTONIC:
 *   getppid()   the cheapest syscall there is;
 *   read()      of 1 byte from a pipe kept full (refilled outside the timing).
 *
 *   ptsyscall [-n CALLS]      (prints one JSON line)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PIPE_BYTES 65536	/* a pipe's default capacity */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* getppid() through syscall(2): libc may cache nothing here, but say so. */
static double getppid_ns(long calls)
{
	uint64_t t0 = now_ns();

	for (long i = 0; i < calls; i++)
		syscall(SYS_getppid);
	return (double)(now_ns() - t0) / calls;
}

static double pipe_read_ns(long calls)
{
	static char fill[PIPE_BYTES];
	uint64_t spent = 0;
	long done = 0;
	int fds[2];
	char c;

	if (pipe(fds)) {
		fprintf(stderr, "ptsyscall: pipe: %s\n", strerror(errno));
		exit(1);
	}
	while (done < calls) {
		long n = calls - done < PIPE_BYTES ? calls - done : PIPE_BYTES;
		uint64_t t0;

		if (write(fds[1], fill, n) != n) {
			fprintf(stderr, "ptsyscall: pipe write: %s\n", strerror(errno));
			exit(1);
		}
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			if (read(fds[0], &c, 1) != 1) {
				fprintf(stderr, "ptsyscall: pipe read: %s\n", strerror(errno));
				exit(1);
			}
		}
		spent += now_ns() - t0;
		done += n;
	}
	close(fds[0]);
	close(fds[1]);
	return (double)spent / calls;
}

int main(int argc, char **argv)
{
	long calls = 200000;
	char *end;

	if (argc == 3 && !strcmp(argv[1], "-n")) {
		errno = 0;
		calls = strtol(argv[2], &end, 10);
		if (errno || *end || calls < 1 || calls > 1000000000) {
			fprintf(stderr, "ptsyscall: -n: not a count from 1 to 1000000000: %s\n",
				argv[2]);
			return 2;
		}
	} else if (argc != 1) {
		fprintf(stderr, "usage: ptsyscall [-n CALLS]\n");
		return 2;
	}
	printf("{\"calls\":%ld,\"getppid_ns\":%.1f,\"pipe_read_ns\":%.1f}\n", calls,
	       getppid_ns(calls), pipe_read_ns(calls));
	return 0;
}
