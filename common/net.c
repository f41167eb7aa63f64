#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int net_resolve(const char *host, uint16_t port, struct net_addr *out)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || !res)
        return -EINVAL;
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

uint16_t net_port(const struct net_addr *addr)
{
    if (addr->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
}

void net_format(const struct net_addr *addr, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr->ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr, host,
                  sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)net_port(addr));
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&addr->ss)->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)net_port(addr));
    }
}

static int set_int_option(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : -errno;
}

int net_listen(const struct net_addr *addr, int backlog, bool reuseport)
{
    int err;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    /* SO_REUSEADDR: restart at once on a port whose old connections sit in TIME_WAIT. */
    if ((err = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0)
        goto err;
    if (reuseport && (err = set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0)
        goto err;
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 || listen(fd, backlog) != 0) {
        err = -errno;
        goto err;
    }
    return fd;
err:
    close(fd);
    return err;
}

int net_local_addr(int fd, struct net_addr *out)
{
    out->len = sizeof out->ss;
    return getsockname(fd, (struct sockaddr *)&out->ss, &out->len) == 0 ? 0 : -errno;
}

int net_connect(const struct net_addr *addr, bool nonblock)
{
    return net_connect_from(addr, NULL, nonblock);
}

int net_connect_from(const struct net_addr *addr, const struct net_addr *source, bool nonblock)
{
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
    int fd = socket(addr->ss.ss_family, type, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    int err = net_set_nodelay(fd);
    if (err < 0)
        goto err;
    if (source) {
        /* Without IP_BIND_ADDRESS_NO_PORT, bind() would pick the port now, unique for the
         * source alone; with it the port is picked at connect() for the whole 4-tuple, so
         * every source address has the full ephemeral range towards every destination. */
        if (source->ss.ss_family == AF_INET
            && (err = set_int_option(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)) < 0)
            goto err;
        if (bind(fd, (const struct sockaddr *)&source->ss, source->len) != 0) {
            err = -errno;
            goto err;
        }
    }
    bool retried = false;
    while (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        /* An interrupted blocking connect carries on in the kernel: calling again waits for it,
         * and EISCONN then means it has completed. */
        if (errno == EINTR && !nonblock) {
            retried = true;
            continue;
        }
        if ((errno == EINPROGRESS && nonblock) || (errno == EISCONN && retried))
            break;
        err = -errno;
        goto err;
    }
    return fd;
err:
    close(fd);
    return err;
}

int net_socket_error(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        return -errno;
    return -soerr;
}

int net_set_nodelay(int fd)
{
    return set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

int net_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -errno;
    return 0;
}

bool net_accept_error_is_per_connection(int err)
{
    switch (err) {
    case EINTR: case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        return true;
    }
    return false;
}

int net_accept(int listen_fd, int flags)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | flags);
        if (fd < 0) {
            if (net_accept_error_is_per_connection(errno))
                continue;
            return -errno;
        }
        /* Fails only on a socket that is already gone; its first read or write will say so. */
        (void)net_set_nodelay(fd);
        return fd;
    }
}

bool net_accept_error_is_exhaustion(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

ssize_t net_recv(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

int net_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fs.nr_open: the most descriptors any process may have (the kernel refuses a higher limit). */
static long fd_limit_ceiling(void)
{
    long ceiling = NET_FD_LIMIT_WANTED, nr_open = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f) {
        if (fscanf(f, "%ld", &nr_open) == 1 && nr_open > 0 && nr_open < ceiling)
            ceiling = nr_open;
        fclose(f);
    }
    return ceiling;
}

long net_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    rlim_t want = (rlim_t)fd_limit_ceiling();
    if (rl.rlim_max < want) {
        /* Only a privileged process may raise its hard limit; for others this fails, harmlessly. */
        struct rlimit higher = {.rlim_cur = want, .rlim_max = want};
        if (setrlimit(RLIMIT_NOFILE, &higher) == 0)
            return (long)want;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -errno;
    }
    return (long)rl.rlim_cur;
}

int net_set_fd_limit(long n)
{
    struct rlimit rl = {.rlim_cur = (rlim_t)n, .rlim_max = (rlim_t)n};
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -errno;
}
