package pgcluster

import "errors"

// ErrStart: the cluster could not be created or did not come up.
var ErrStart = errors.New("cannot start a throwaway PostgreSQL cluster")

// ErrNoBinaries: the PostgreSQL binaries a task needs are not installed where Sluice looks.
var ErrNoBinaries = errors.New("PostgreSQL binaries not found")
