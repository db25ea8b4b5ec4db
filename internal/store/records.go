package store

import (
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Records are small named values that other parts of palisade keep next to
// the bans (the Cloudflare lock's last known good list, the ids of edge
// rules). Each space is a nested bucket of the "records" bucket, so one
// subsystem's keys never collide with another's and the ban buckets stay
// untouched. Every write is one committed (fsync) transaction.

var bucketRecords = []byte("records")

// maxRecordSpace bounds a space name; keys and values are bounded by bbolt.
const maxRecordSpace = 64

func checkSpace(space string) error {
	if space == "" || len(space) > maxRecordSpace {
		return fmt.Errorf("store: record space %q: must be 1 to %d bytes", space, maxRecordSpace)
	}
	return nil
}

// PutRecords stores put and deletes del in space, in one transaction.
// Deleting a key that does not exist is not an error.
func (s *Store) PutRecords(space string, put map[string][]byte, del []string) error {
	if err := checkSpace(space); err != nil {
		return err
	}
	keys := make([]string, 0, len(put))
	for k := range put {
		if k == "" {
			return fmt.Errorf("store: record space %s: empty key", space)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	err := s.update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketRecords)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(space))
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := b.Put([]byte(k), put[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save %d record(s) in %s: %w", len(put)+len(del), space, err)
	}
	return nil
}

// Record returns the value of key in space; ok is false when there is none.
func (s *Store) Record(space, key string) (value []byte, ok bool, err error) {
	if err := checkSpace(space); err != nil {
		return nil, false, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		b := recordBucket(tx, space)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			value, ok = append([]byte(nil), v...), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: record %s/%s: %w", space, key, err)
	}
	return value, ok, nil
}

// Records returns every key and value of space (empty when the space has
// never been written).
func (s *Store) Records(space string) (map[string][]byte, error) {
	if err := checkSpace(space); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := s.view(func(tx *bolt.Tx) error {
		b := recordBucket(tx, space)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return errors.New("unexpected nested bucket")
			}
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: records of %s: %w", space, err)
	}
	return out, nil
}

func recordBucket(tx *bolt.Tx, space string) *bolt.Bucket {
	root := tx.Bucket(bucketRecords)
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(space))
}
