/** The LangGraph-style engine: `StateGraph`, `Send`, `START`/`END`, channels (reducers) and the snapshot types. */
export * from './state-graph';
