package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ganger-dev/ganger/internal/clusterd"
)

var _ clusterd.Store = (*Store)(nil)

// SaveCluster implements clusterd.Store.
func (s *Store) SaveCluster(ctx context.Context, r clusterd.Record) error {
	if r.Name == "" {
		return errors.New("postgres store: save cluster: empty name")
	}
	members, err := clusterd.EncodeMembers(r.Members)
	if err != nil {
		return fmt.Errorf("postgres store: save cluster %s/%s: %w", r.Node, r.Name, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO clusters
		(node, name, size, last_inc, epoch, secret, members, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (node, name) DO UPDATE SET
			size = excluded.size, last_inc = excluded.last_inc, epoch = excluded.epoch,
			secret = excluded.secret, members = excluded.members, updated_at = excluded.updated_at`,
		r.Node, r.Name, r.Size, r.LastInc, r.Epoch, r.Secret, members, timestamp(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres store: save cluster %s/%s: %w", r.Node, r.Name, err)
	}
	return nil
}

// Clusters implements clusterd.Store.
func (s *Store) Clusters(ctx context.Context, node string) ([]clusterd.Record, error) {
	rs, err := s.clusters(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("postgres store: clusters of %s: %w", node, err)
	}
	return rs, nil
}

func (s *Store) clusters(ctx context.Context, node string) ([]clusterd.Record, error) {
	rows, err := s.pool.Query(ctx, `SELECT node, name, size, last_inc, epoch, secret, members, updated_at
		FROM clusters WHERE node = $1 ORDER BY name`, node)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []clusterd.Record
	for rows.Next() {
		var (
			r       clusterd.Record
			members []byte
			updated pgtype.Timestamptz
		)
		if err := rows.Scan(&r.Node, &r.Name, &r.Size, &r.LastInc, &r.Epoch, &r.Secret, &members, &updated); err != nil {
			return nil, err
		}
		if r.Members, err = clusterd.DecodeMembers(members); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", r.Name, err)
		}
		r.UpdatedAt = fromTimestamp(updated)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteCluster implements clusterd.Store.
func (s *Store) DeleteCluster(ctx context.Context, node, name string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM clusters WHERE node = $1 AND name = $2`, node, name); err != nil {
		return fmt.Errorf("postgres store: delete cluster %s/%s: %w", node, name, err)
	}
	return nil
}
