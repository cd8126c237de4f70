/*  replica_store.c: the replica's sorted topic store, each topic with the seq it was last
    published with. See replica_private.h.  */
#include "replica_private.h"

#include <stdlib.h>
#include <string.h>

static void s_entry_free(asy_replica_entry_t *entry)
{
    if (entry) {
        free(entry->update.cells);
        free(entry);
    }
}

void asy_replica_store_clear(asy_replica_store_t *store)
{
    for (size_t i = 0; i < store->count; i++)
        s_entry_free(store->items[i]);
    free(store->items);
    memset(store, 0, sizeof *store);
}

/* Index of topic, or of where it would go (*found false). */
size_t asy_replica_store_find(const asy_replica_store_t *store, const char *topic, bool *found)
{
    size_t low = 0, high = store->count;
    *found = false;
    /* snapshots and steady streams mostly come in order or hit the last entry */
    if (high > 0 && strcmp(store->items[high - 1]->update.topic, topic) < 0)
        return high;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        int order = strcmp(store->items[middle]->update.topic, topic);
        if (order == 0) {
            *found = true;
            return middle;
        }
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/* Replaces or inserts update's topic; takes the cells of *update (left empty). */
static int s_store_take(asy_replica_store_t *store, uint64_t seq, asy_mupdate_t *update)
{
    bool found;
    size_t index = asy_replica_store_find(store, update->topic, &found);
    if (found) {
        asy_replica_entry_t *entry = store->items[index];
        free(entry->update.cells);
        entry->update = *update;
        entry->seq = seq;
    } else {
        if (store->count == store->capacity) {
            size_t capacity = store->capacity ? store->capacity * 2 : 64;
            asy_replica_entry_t **items =
                realloc(store->items, capacity * sizeof(asy_replica_entry_t *));
            if (!items)
                return ASY_ENOMEM;
            store->items = items;
            store->capacity = capacity;
        }
        asy_replica_entry_t *entry = malloc(sizeof *entry);
        if (!entry)
            return ASY_ENOMEM;
        entry->update = *update;
        entry->seq = seq;
        memmove(&store->items[index + 1], &store->items[index],
                (store->count - index) * sizeof(asy_replica_entry_t *));
        store->items[index] = entry;
        store->count++;
    }
    update->cells = NULL;
    update->cell_count = update->cell_capacity = 0;
    return 0;
}

/* Replaces or inserts a copy of update (with its cells). */
int asy_replica_store_put(asy_replica_store_t *store, uint64_t seq, const asy_mupdate_t *update)
{
    asy_mupdate_t copy = *update;
    copy.cells = malloc((copy.cell_count ? copy.cell_count : 1) * sizeof *copy.cells);
    if (!copy.cells)
        return ASY_ENOMEM;
    if (copy.cell_count)
        memcpy(copy.cells, update->cells, copy.cell_count * sizeof *copy.cells);
    copy.cell_capacity = copy.cell_count;
    int rc = s_store_take(store, seq, &copy);
    if (rc != 0)
        free(copy.cells);
    return rc;
}
