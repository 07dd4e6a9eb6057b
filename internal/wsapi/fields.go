package wsapi

import (
	"context"
	"sync"
	"time"
)

// FieldSource lists the fields a filter may name for an entity: the columns of
// its table, without the secret ones (filtering on a secret would leak it).
type FieldSource func(ctx context.Context, entity string) ([]string, error)

// fieldCache remembers each entity's fields for a minute, so that a subscribe
// costs no query; a filter naming a field it does not know makes it read the
// table again (tables gain columns while serving).
type fieldCache struct {
	src FieldSource
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedFields
	// reread serialises the reads a missing field causes, so that a flood of
	// unknown fields costs one query at a time.
	reread sync.Mutex
}

type cachedFields struct {
	fields map[string]bool
	at     time.Time
}

func newFieldCache(src FieldSource) *fieldCache {
	return &fieldCache{src: src, ttl: time.Minute, m: map[string]cachedFields{}}
}

// has reports whether entity has every field of names. When one is missing it
// reads the table again at once (a column added a moment ago is accepted),
// one read at a time: callers that missed meanwhile take that read's answer.
func (c *fieldCache) has(ctx context.Context, entity string, names []string) (missing string, err error) {
	fields, at, err := c.load(ctx, entity, time.Time{})
	if err != nil {
		return "", err
	}
	if missing = firstMissing(fields, names); missing == "" {
		return "", nil
	}
	c.reread.Lock()
	defer c.reread.Unlock()
	if fields, _, err = c.load(ctx, entity, at.Add(time.Nanosecond)); err != nil {
		return "", err
	}
	return firstMissing(fields, names), nil
}

func firstMissing(fields map[string]bool, names []string) string {
	for _, n := range names {
		if !fields[n] {
			return n
		}
	}
	return ""
}

// load returns the cached fields and when they were read, reading them again
// when they are older than the TTL or were read before newer.
func (c *fieldCache) load(ctx context.Context, entity string, newer time.Time) (map[string]bool, time.Time, error) {
	c.mu.Lock()
	cf, ok := c.m[entity]
	c.mu.Unlock()
	if ok && time.Since(cf.at) < c.ttl && !cf.at.Before(newer) {
		return cf.fields, cf.at, nil
	}
	list, err := c.src(ctx, entity)
	if err != nil {
		return nil, time.Time{}, err
	}
	cf = cachedFields{fields: toSet(list), at: time.Now()}
	c.mu.Lock()
	c.m[entity] = cf
	c.mu.Unlock()
	return cf.fields, cf.at, nil
}
