package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ganger-dev/ganger/internal/clusterd"
)

var _ clusterd.Store = (*Store)(nil)

// SaveCluster implements clusterd.Store.
func (s *Store) SaveCluster(ctx context.Context, r clusterd.Record) error {
	if r.Name == "" {
		return errors.New("sqlite store: save cluster: empty name")
	}
	members, err := clusterd.EncodeMembers(r.Members)
	if err != nil {
		return fmt.Errorf("sqlite store: save cluster %s/%s: %w", r.Node, r.Name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO clusters
			(node, name, size, last_inc, epoch, secret, members, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
			ON CONFLICT (node, name) DO UPDATE SET
				size = excluded.size, last_inc = excluded.last_inc, epoch = excluded.epoch,
				secret = excluded.secret, members = excluded.members, updated_at = excluded.updated_at`,
			r.Node, r.Name, r.Size, r.LastInc, r.Epoch, r.Secret, members, micros(r.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite store: save cluster %s/%s: %w", r.Node, r.Name, err)
	}
	return nil
}

// Clusters implements clusterd.Store.
func (s *Store) Clusters(ctx context.Context, node string) ([]clusterd.Record, error) {
	rs, err := s.clusters(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: clusters of %s: %w", node, err)
	}
	return rs, nil
}

func (s *Store) clusters(ctx context.Context, node string) ([]clusterd.Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT node, name, size, last_inc, epoch, secret, members, updated_at
		FROM clusters WHERE node = ?1 ORDER BY name`, node)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []clusterd.Record
	for rows.Next() {
		var (
			r       clusterd.Record
			members string
			updated sql.NullInt64
		)
		if err := rows.Scan(&r.Node, &r.Name, &r.Size, &r.LastInc, &r.Epoch, &r.Secret, &members, &updated); err != nil {
			return nil, err
		}
		if r.Members, err = clusterd.DecodeMembers([]byte(members)); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", r.Name, err)
		}
		r.UpdatedAt = fromMicros(updated)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteCluster implements clusterd.Store.
func (s *Store) DeleteCluster(ctx context.Context, node, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM clusters WHERE node = ?1 AND name = ?2`, node, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite store: delete cluster %s/%s: %w", node, name, err)
	}
	return nil
}
