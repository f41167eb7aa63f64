/*
 * net.h - the socket code that servers, load generator and tests share.
 *
 * Every function returns a file descriptor or 0 on success and -errno on failure; none prints or
 * exits. Sockets are created close-on-exec. Blocking helpers retry EINTR, so a signal never
 * surfaces as a spurious error.
 */
#ifndef ECHOBENCH_NET_H
#define ECHOBENCH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A socket address of either family. */
struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Longest text net_format() writes: "[" IPv6 "]:" port, plus the NUL. */
#define NET_ADDR_STRLEN 64

/* Resolves host (an IPv4 or IPv6 address, or a name such as "localhost") and port into *out.
 * Returns 0, or -EINVAL when the host does not resolve. */
int net_resolve(const char *host, uint16_t port, struct net_addr *out);

/* Writes "1.2.3.4:80" or "[::1]:80" into buf (at least NET_ADDR_STRLEN bytes). */
void net_format(const struct net_addr *addr, char *buf, size_t len);

/* The port of addr, in host byte order. */
uint16_t net_port(const struct net_addr *addr);

/* A TCP socket bound to addr and listening with the given backlog, SO_REUSEADDR set (and
 * SO_REUSEPORT when reuseport is true). Returns the fd or -errno (-EADDRINUSE, ...). */
int net_listen(const struct net_addr *addr, int backlog, bool reuseport);

/* The local address a socket is bound to (after binding to port 0, the port the kernel chose). */
int net_local_addr(int fd, struct net_addr *out);

/* A TCP socket connecting to addr. With nonblock, the connect may still be in progress when this
 * returns (wait for writability, then check net_socket_error()). Returns the fd or -errno. */
int net_connect(const struct net_addr *addr, bool nonblock);

/* Like net_connect(), but from the local address `source` (its port should be 0; NULL: the
 * kernel's choice, as net_connect). An IPv4 source is bound with IP_BIND_ADDRESS_NO_PORT, so
 * the ephemeral port is chosen at connect() for the (source, destination) pair: each source
 * address has the whole port range towards each destination. Returns the fd or -errno
 * (-EADDRNOTAVAIL: the source is not a local address, or no port is left for the pair). */
int net_connect_from(const struct net_addr *addr, const struct net_addr *source, bool nonblock);

/* The pending error of a socket (SO_ERROR) as -errno, or 0. */
int net_socket_error(int fd);

/* Disables Nagle's algorithm. Every server model and the load generator set it alike, so that no
 * model gains or loses by coalescing small writes. */
int net_set_nodelay(int fd);

/* Makes fd non-blocking. */
int net_set_nonblock(int fd);

/* accept4() with SOCK_CLOEXEC plus flags (e.g. SOCK_NONBLOCK), then TCP_NODELAY on the new
 * socket. Retries EINTR and the errors that belong to one pending connection (ECONNABORTED for a
 * client that reset before being accepted, EPROTO, ENETDOWN, ...: see accept(2)). Returns the
 * new fd or -errno: -EAGAIN when a non-blocking listener has nothing pending, an exhaustion error
 * (below), or EINVAL once the listener has been shut down. */
int net_accept(int listen_fd, int flags);

/* True for accept errors that belong to one pending connection, not to the listener (EINTR,
 * ECONNABORTED, EPROTO, ENETDOWN, EHOSTUNREACH, ...): accept(2) says to treat them like EAGAIN
 * and try again. Every model must, whether it calls net_accept() or accept4() itself. */
bool net_accept_error_is_per_connection(int err);

/* True for accept errors that mean "out of descriptors or memory, try later": EMFILE, ENFILE,
 * ENOBUFS, ENOMEM. A server must neither die nor spin on them. */
bool net_accept_error_is_exhaustion(int err);

/* Blocking receive of up to len bytes. Returns the byte count, 0 at end of stream, or -errno. */
ssize_t net_recv(int fd, void *buf, size_t len);

/* Blocking send of all len bytes, completing short writes. MSG_NOSIGNAL: a peer that went away
 * yields -EPIPE instead of killing the process with SIGPIPE. Returns 0 or -errno. */
int net_send_all(int fd, const void *buf, size_t len);

/* The most descriptors a process asks for: enough for 100,000 connections and their peers. */
#define NET_FD_LIMIT_WANTED 1048576L

/* Raises RLIMIT_NOFILE as far as this process may: the soft limit to the hard one and, for a
 * privileged process (CAP_SYS_RESOURCE), both to NET_FD_LIMIT_WANTED or fs.nr_open, whichever
 * is lower. Never lowers a limit. Returns the new soft limit or -errno. */
long net_raise_fd_limit(void);

/* Sets the soft and hard RLIMIT_NOFILE to n exactly (lower, or higher when privileged).
 * Returns 0 or -errno. */
int net_set_fd_limit(long n);

#endif
