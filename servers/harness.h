/*
 * harness.h - the parts of server.c that only echo-server.c calls. Models never need these.
 */
#ifndef ECHOBENCH_HARNESS_H
#define ECHOBENCH_HARNESS_H

#include "server.h"

/* Initialises srv for cfg with the given (shared) stats; listen_fd and stop_fd are set by the
 * caller. Returns 0 or -errno. */
int harness_init(struct server *srv, const struct server_config *cfg, struct server_stats *stats);

#endif
