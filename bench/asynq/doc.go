// Package asynqbench runs callbackd's promise store and hibiken/asynq side by side on the same
// redis-server, in interleaved rounds, and prints the ratios. It is a module of its own so that
// callbackd itself never depends on asynq: run it with `cd bench/asynq && go test -run '^$'
// -bench . -benchtime 1x`.
//
// A drain is timed from the start of the workers (callbackd's claimers, asynq's Server.Start)
// to the moment the last job's completion is stored in Redis, the same end for both; asynq's
// Shutdown is not timed, since it waits out the processor's empty-queue sleep (0.5–1.5 s).
// The claim ceiling is a minimal ZPOPMIN + lease + HSET script run by redis-benchmark (a C
// client) and by go-redis (the client callbackd uses), both from 50 connections.
//
// Under valgrind, BenchmarkServerInstructions counts what redis-server executes per enqueue,
// claim and complete, and BenchmarkFeatureCost what each of the store's features adds to the
// floor of its commands (see floor). `go test .` checks that the floor still sends the store's
// commands and that each feature's are its own.
package asynqbench
