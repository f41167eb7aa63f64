/*
 * list.h - the one intrusive doubly-linked list of the project (in the style of libuv's queue.h).
 *
 * A node is embedded in the structure it links; the list head is a node of its own that points to
 * itself when the list is empty. Nothing allocates: inserting and removing are two pointer writes
 * each, O(1), so the lists can sit on hot paths (a connection leaving a reactor, a starved
 * connection queued for buffers). Used for every list of connections in servers/ and loadgen/.
 *
 *   struct conn { int fd; struct list link; };
 *   struct list conns;
 *   list_init(&conns);
 *   list_insert_tail(&conns, &c->link);           // FIFO: insert at the tail, take the head
 *   struct conn *first = list_entry(list_first(&conns), struct conn, link);
 *   list_remove(&c->link);                         // O(1); the node is then unlinked
 *
 * A node that is not in a list is "unlinked": zeroed (calloc) or removed. list_linked() tells the
 * two apart, so a structure can be on a list or not without a separate flag.
 */
#ifndef ECHOBENCH_LIST_H
#define ECHOBENCH_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *prev, *next;
};

/* The structure of type `type` whose member `member` is the node `node`. */
#define list_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

/* for (node = first; node != head; node = next): the loop body may remove `node` itself. */
#define list_for_each_safe(node, tmp, head)                                                 \
    for ((node) = (head)->next, (tmp) = (node)->next; (node) != (head);                    \
         (node) = (tmp), (tmp) = (node)->next)

/* Makes head an empty list. */
static inline void list_init(struct list *head)
{
    head->prev = head->next = head;
}

static inline bool list_empty(const struct list *head)
{
    return head->next == head;
}

/* The first node, or head itself when the list is empty. */
static inline struct list *list_first(const struct list *head)
{
    return head->next;
}

/* True if node is in some list (false for a zeroed or removed node). */
static inline bool list_linked(const struct list *node)
{
    return node->next != NULL && node->next != node;
}

static inline void list_insert_tail(struct list *head, struct list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void list_insert_head(struct list *head, struct list *node)
{
    node->next = head->next;
    node->prev = head;
    head->next->prev = node;
    head->next = node;
}

/* Unlinks node from its list; afterwards list_linked(node) is false. Removing an unlinked node
 * is a no-op. */
static inline void list_remove(struct list *node)
{
    if (!list_linked(node))
        return;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* Removes and returns the first node, or NULL if the list is empty. */
static inline struct list *list_pop_first(struct list *head)
{
    if (list_empty(head))
        return NULL;
    struct list *node = head->next;
    list_remove(node);
    return node;
}

#endif
