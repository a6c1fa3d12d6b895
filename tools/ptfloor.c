// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * ptfloor: attach every hook porttrace attaches, loaded exactly as porttrace
 * loads them, but with each program returning at once; stay until SIGINT or
 * SIGTERM. make bench runs its storm beside this, paired with runs without
 * tracing, to measure what the hook points alone cost the load: the entry
 * into each BPF program, the cgroup program arrays, and, where the syscall
 * tracepoints serve the socket calls (no fentry/fexit, or
 * PORTTRACE_SYSCALL_HOOKS=1), the traced slow path that every syscall on the
 * host takes while one is attached. The same set as porttrace's is chosen
 * the same way. porttrace cannot cost less than that floor.
 *
 *   ptfloor        (prints "attached: HOOKS" once ready)
 */
#include <signal.h>
#include <stdio.h>
#include "log.h"
#include "pipeline.h"
#include "tracer.h"

int main(int argc, char **argv)
{
	struct tracer_opts opts = {.ring_mb = PT_DEFAULT_RING_MB, .hooks_only = true};
	struct pipeline *pipe = NULL;
	struct tracer *t = NULL;
	int sig, ret = 1;
	sigset_t stop;

	if (argc != 1) {
		fprintf(stderr, "usage: ptfloor\n");
		return 2;
	}
	/* Blocked before anything is attached, so that a stop that comes
	 * early still detaches. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, NULL);

	if (tracer__preflight())
		goto out;
	/* The pipeline with no consumer: what is left is the hooks. */
	pipe = pipeline__new(&(struct pipeline_opts){});
	if (!pipe) {
		p_err("out of memory");
		goto out;
	}
	t = tracer__new(&opts, pipeline__decoder(pipe), pipeline__event, pipe);
	if (!t)
		goto out;
	printf("attached: %s\n", tracer__hooks(t));
	fflush(stdout);
	sigwait(&stop, &sig);
	ret = 0;
out:
	tracer__free(t);
	pipeline__free(pipe);
	return ret;
}
