/*
 * fork.c - a process per connection.
 *
 * How it works
 *   The parent accepts; for every connection it fork()s a child that serves that one client with
 *   plain blocking calls and exits. The parent closes its copy of the connected socket at once
 *   (otherwise the connection would stay open after the child is done, and the parent would run
 *   out of descriptors), and the child closes its copy of the listener.
 *
 *   A child that exits becomes a zombie until its parent wait()s for it. The parent must reap
 *   promptly or zombies pile up under connection churn. Here the parent sleeps in poll() on
 *   three things: the listener (a client is waiting), a signalfd for SIGCHLD (a child exited:
 *   reap with waitpid(WNOHANG) until none is left, since signals of the same kind coalesce), and
 *   the harness's stop descriptor. The classic alternative, a SIGCHLD handler, has to deal with
 *   accept() failing with EINTR; a signalfd turns the signal into an ordinary readable event.
 *
 *   On stop the parent sends SIGTERM to every live child (each shuts its socket down and exits)
 *   and waits for all of them, so no process outlives the server. Byte counts reach the parent
 *   through the shared stats page.
 *
 * What limits it
 *   fork() copies the page tables and descriptor table of the parent: tens to hundreds of
 *   microseconds per connection, which dominates connect-per-request workloads. Each child is a
 *   full process (its own memory, kernel structures and scheduler entity), so thousands of
 *   connections mean thousands of processes, with context switches between them. Isolation is
 *   the benefit: a crashing child takes only its own client down.
 *
 * Try it
 *   echo-server --model fork --port 7007
 *   nc 127.0.0.1 7007                  # several at once: each gets its own process
 *   pstree -p $(pgrep -f 'model fork')
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server.h"

/* The child: serve one connection with blocking I/O, then leave. */
static _Noreturn void child_main(struct server *srv, int fd, int sigchld_fd)
{
    close(sigchld_fd);
    server_enter_child(srv, fd, false);
    server_child_serve(srv, fd);
    _exit(0); /* not exit(): the parent's stdio buffers and atexit handlers are not ours */
}

/* Accepts one waiting client and hands it to a new child. Returns 0 or an unexpected -errno. */
static int accept_and_fork(struct server *srv, struct server_children *ch)
{
    int fd = net_accept(srv->listen_fd, 0);
    if (fd == -EAGAIN || server_stopping(srv)) {
        if (fd >= 0)
            close(fd); /* accepted as the stop came: not served */
        return 0; /* the client left before we got to it, or the listener was shut down */
    }
    if (fd < 0 && net_accept_error_is_exhaustion(-fd)) {
        /* Out of descriptors or memory: wait (the backlog holds clients), reaping meanwhile. */
        server_count(&srv->stats->accept_pauses, 1);
        server_children_reap(ch, false);
        server_pause(srv, SERVER_ACCEPT_PAUSE_MS);
        return 0;
    }
    if (fd < 0)
        return fd;
    server_count(&srv->stats->connections, 1);
    /* The listener is non-blocking so a client that vanished between poll() and accept() cannot
     * hang the parent; the accepted socket does not inherit that flag: the child blocks. */
    pid_t pid = fork();
    if (pid == 0)
        child_main(srv, fd, ch->sigchld_fd);
    close(fd); /* the parent's copy: the child has its own */
    if (pid < 0) {
        /* Out of processes or memory: drop this client and back off rather than spin. */
        server_count(&srv->stats->shed, 1);
        server_pause(srv, 10);
    } else if (server_children_add(ch, pid) < 0) {
        kill(pid, SIGTERM); /* cannot track it, so do not leave it running unwatched */
        waitpid(pid, NULL, 0);
        server_count(&srv->stats->shed, 1);
    }
    return 0;
}

static int fork_run(struct server *srv)
{
    struct server_children ch;
    int err = server_children_init(&ch);
    if (err < 0)
        return server_fail(srv, "signalfd", err);
    if ((err = net_set_nonblock(srv->listen_fd)) < 0)
        err = server_fail(srv, "fcntl", err);

    while (err == 0 && !server_stopping(srv)) {
        int wake = server_children_wait(srv, &ch, srv->listen_fd);
        if (wake < 0) {
            err = server_fail(srv, "poll", wake);
            break;
        }
        if (wake & SERVER_WAKE_CHILD)
            server_children_reap(&ch, false);
        if ((wake & SERVER_WAKE_FD) && (err = accept_and_fork(srv, &ch)) < 0)
            err = server_fail(srv, "accept", err);
    }
    server_children_stop(&ch); /* SIGTERM to each: it shuts its connection down and exits */
    return err;
}

const struct server_model model_fork = {
    .name = "fork",
    .summary = "a child process per connection; the parent reaps via a SIGCHLD signalfd",
    .kind = MODEL_PROCESSES,
    .kernel_limits = {{"kernel.pid_max", 1, "a process per connection"}},
    .run = fork_run,
};
