/* The echo load generator in C: the same protocol and output as _echoclient.py, a fraction of its CPU.
 *
 * usage: _echoclient PORT CONNECTIONS SIZE SECONDS
 * Opens CONNECTIONS connections to 127.0.0.1:PORT; each sends a SIZE-byte message, waits for all of
 * it to come back, and repeats. After a short warm-up it counts completed round trips for SECONDS
 * and prints {"messages": n, "seconds": s}. bench_network.py builds it with the system C compiler
 * (the Python client is the fallback): a Python client costs about as much CPU per message as the
 * servers it measures, so on two cores it, not the server, would set the pace.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), connections = atoi(argv[2]), size = atoi(argv[3]);
    double seconds = atof(argv[4]);
    char *message = malloc(size);
    memset(message, 'm', size);
    static char buffer[65536];
    int *pending = calloc(65536, sizeof(int));
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    for (int i = 0; i < connections; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || fd >= 65536 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        pending[fd] = size;
        if (send(fd, message, size, 0) != size) {
            perror("send");
            return 1;
        }
    }
    double warmUntil = now() + (seconds / 4 < 0.5 ? seconds / 4 : 0.5);
    int counting = 0;
    long count = 0;
    double start = 0, end = 0;
    struct epoll_event events[256];
    for (;;) {
        double t = now();
        if (!counting && t >= warmUntil) {
            counting = 1;
            count = 0;
            start = t;
            end = t + seconds;
        }
        if (counting && t >= end)
            break;
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                fprintf(stderr, "server closed a connection\n");
                return 1;
            }
            pending[fd] -= (int)got;
            if (pending[fd] <= 0) {
                count++;
                pending[fd] = size;
                send(fd, message, size, 0);
            }
        }
    }
    printf("{\"messages\": %ld, \"seconds\": %.6f}\n", count, now() - start);
    return 0;
}
