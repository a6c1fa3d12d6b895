/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
#ifndef PT_RUN_H
#define PT_RUN_H

#include <time.h>
#include <linux/types.h>

/* porttrace [OPTIONS]: trace live until a signal or --duration. */
int run__main(int argc, char **argv);

__u64 run__now_ns(clockid_t clk);

#endif /* PT_RUN_H */
