/*
 * styx bind shim: LD_PRELOADed into a cluster's Ray processes on nodes that talk to each
 * other over the network. Ray's servers (GCS, raylet, workers, agents) listen on every
 * interface once the node's address is not loopback; this turns each wildcard bind
 * (0.0.0.0, or :: for a dual-stack socket) into a bind to STYX_BIND_ADDRESS, the node's
 * private IPv4 address, so nothing of the cluster's is reachable on any other interface.
 *
 * Built on the node by styx.agent.raynode (cc -shared -fPIC); no other behaviour changes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = NULL;
    if (real_bind == NULL) {
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    }
    const char *ip = getenv("STYX_BIND_ADDRESS");
    struct in_addr want;
    if (addr == NULL || ip == NULL || inet_pton(AF_INET, ip, &want) != 1) {
        return real_bind(fd, addr, len);
    }
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            a.sin_addr = want;
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            /* The IPv4-mapped form of the node's address: a dual-stack socket then accepts
             * IPv4 connections to that one address only. */
            memset(&a.sin6_addr, 0, sizeof a.sin6_addr);
            a.sin6_addr.s6_addr[10] = 0xff;
            a.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a.sin6_addr.s6_addr[12], &want, 4);
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    }
    return real_bind(fd, addr, len);
}
