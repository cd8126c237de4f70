/*  sections.c: see sections.h.  */
#include "sections.h"

#include <stdio.h>
#include <string.h>

bool asy_sections_known(zconfig_t *root, char *why, size_t why_size)
{
    static const char *const known[] = {"agent", "broker", "monitor"};
    for (zconfig_t *section = zconfig_child(root); section; section = zconfig_next(section)) {
        const char *name = zconfig_name(section);
        bool found = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !found; i++)
            found = name && strcmp(name, known[i]) == 0;
        if (!found) {
            snprintf(why, why_size,
                     "\"%s\" is not a section of any advsync program (they are agent, broker, "
                     "monitor): misspelt?",
                     name ? name : "");
            return false;
        }
    }
    return true;
}

bool asy_sections_given_before(zconfig_t *parent, zconfig_t *item)
{
    const char *name = zconfig_name(item);
    for (zconfig_t *before = zconfig_child(parent); before && before != item;
         before = zconfig_next(before))
        if (name && zconfig_name(before) && strcmp(zconfig_name(before), name) == 0)
            return true;
    return false;
}
