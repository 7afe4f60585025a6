/**
 * The model catalog (`GET /models`): the union of every node's `/api/tags`, each node asked with a short
 * timeout, merged per model with live pollers on its pinned queue (DescribeTaskQueue) and loaded state
 * (`/api/ps`). A dead or slow node is reported unavailable; `get()` never waits much past the node timeout.
 * OWNER: API helper (implementation pending).
 */
import type { Client } from '@temporalio/client';

export interface CatalogNode {
  id: string;
  url: string;
  available: boolean;
  error?: string;
  latencyMs?: number;
  models: string[];
  loaded: string[];
}

export interface CatalogModel {
  name: string;
  queue: string;
  /** Nodes that serve it (available or not). */
  nodes: { id: string; available: boolean; loaded: boolean }[];
  /** Live pollers on the model's queue (llm workers); undefined when Temporal could not be asked. */
  pollers?: number;
  loaded: boolean;
  /** Served by at least one available node. */
  available: boolean;
}

export interface Catalog {
  models: CatalogModel[];
  nodes: CatalogNode[];
  generatedAt: string;
}

export interface ModelCatalog {
  get(): Promise<Catalog>;
  /** True when an available node serves the model (`gemma3` means `gemma3:latest`). */
  hasModel(model: string): Promise<boolean>;
}

export interface CatalogDeps {
  nodes: { id: string; url: string }[];
  nodeTimeoutMs: number;
  /** For poller counts; optional so the catalog works without Temporal. */
  temporal?: Client;
  namespace?: string;
}

export function createCatalog(_deps: CatalogDeps): ModelCatalog {
  throw new Error('createCatalog: not implemented yet');
}
