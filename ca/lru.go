package ca

import (
	"crypto/tls"
	"time"
)

// lru is the bounded in-memory leaf cache: a map for lookup and an
// intrusive doubly linked list for recency. Its owner's mutex guards it.
type lru struct {
	max int
	m   map[string]*entry
	// root is the list's sentinel: root.next is the most recently used
	// entry, root.prev the least.
	root entry
}

// entry is one cached leaf.
type entry struct {
	name       string
	cert       *tls.Certificate
	renewAt    time.Time // serve until then; see renewAt
	prev, next *entry
}

func (c *lru) init(size int) {
	c.max = size
	c.m = make(map[string]*entry, size)
	c.root.prev, c.root.next = &c.root, &c.root
}

// touchLocked marks e as the most recently used.
func (c *lru) touchLocked(e *entry) {
	if c.root.next == e {
		return
	}
	c.unlinkLocked(e)
	c.pushFrontLocked(e)
}

// addLocked inserts or replaces name's leaf, evicting the least recently
// used entry when the cache is full.
func (c *lru) addLocked(name string, cert *tls.Certificate, renewAt time.Time) {
	if e := c.m[name]; e != nil {
		e.cert, e.renewAt = cert, renewAt
		c.touchLocked(e)
		return
	}
	if len(c.m) >= c.max {
		c.removeLocked(c.root.prev)
	}
	e := &entry{name: name, cert: cert, renewAt: renewAt}
	c.m[name] = e
	c.pushFrontLocked(e)
}

// removeLocked drops e from the cache.
func (c *lru) removeLocked(e *entry) {
	c.unlinkLocked(e)
	delete(c.m, e.name)
}

func (c *lru) unlinkLocked(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (c *lru) pushFrontLocked(e *entry) {
	e.prev = &c.root
	e.next = c.root.next
	c.root.next.prev = e
	c.root.next = e
}

// lenLocked returns the number of cached leaves.
func (c *lru) lenLocked() int { return len(c.m) }
