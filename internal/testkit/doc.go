// Package testkit is the folder of the kits that tests share: a lab with
// the daemon in it (labtest), a test binary that is collector (selfexec),
// throwaway PostgreSQL servers (pgtest), databases filled as the daemon
// fills them (storetest, dbtest, floodtest), the kernel guard
// (kerneltest), golden files, and the rest. No package of the product
// imports any of them (TestProductImportsNoKit); the product's own
// helpers sit beside this folder, in internal/kernel and internal/outage.
package testkit
