/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
#ifndef PT_RUN_H
#define PT_RUN_H

/* porttrace [OPTIONS]: trace live until a signal or --duration. */
int run__main(int argc, char **argv);

#endif /* PT_RUN_H */
