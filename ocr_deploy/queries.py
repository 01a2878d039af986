"""The GraphQL documents ``deploy run`` sends to a deployment's webserver (``ocr_deploy.run``).

Each asks for exactly the fields ``run`` reads; errors are asked for through Dagster's ``Error``
interface (every error type has a ``message``), so a refusal comes back as one line instead of
a missing field.
"""

RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry {
      loadStatus
      locationOrLoadError {
        __typename
        ... on RepositoryLocation { repositories { name jobs { name tags { key value } } } }
        ... on PythonError { message }
      }
    }
    ... on Error { message }
  }
}
"""
PARTITION_KEYS = """
query Keys($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  __typename ... on AssetNode { partitionKeys } } }
"""
ACTIVE_BACKFILLS = """
query Active { partitionBackfillsOrError(status: REQUESTED, limit: 100) {
  __typename ... on PartitionBackfills { results { id timestamp tags { key value } } } } }
"""
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on InvalidStepError { invalidStepKey }
  ... on InvalidOutputError { invalidOutputName }
  ... on Error { message }
} }
"""
PROGRESS = """
query Progress($id: String!, $tags: [ExecutionTag!]) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      error { message }
      assetBackfillData { assetBackfillStatuses {
        __typename
        ... on AssetPartitionsStatusCounts {
          assetKey { path } numPartitionsTargeted numPartitionsInProgress
          numPartitionsMaterialized numPartitionsFailed
        }
        ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed }
      } }
    }
    ... on PythonError { message }
  }
  runsOrError(filter: {tags: $tags}) {
    __typename ... on Runs { results { runId status tags { key value } } }
  }
}
"""
NAMESPACE_RUNS = """
query Done($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags, statuses: [SUCCESS]}) {
  __typename ... on Runs { results { runId } } } }
"""
MATERIALIZED = """
query Materialized($keys: [AssetKeyInput!], $partitions: [String!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path } assetMaterializations(partitions: $partitions) { partition runId }
  }
}
"""
FAILURES = """
query Failures($runId: ID!) { logsForRun(runId: $runId) {
  __typename
  ... on EventConnection { events {
    __typename
    ... on ExecutionStepFailureEvent { stepKey error { message cause { message } } }
    ... on RunFailureEvent { message }
  } }
} }
"""
CANCEL = """
mutation Cancel($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }
"""
TERMINATE = """
mutation Terminate($ids: [String!]!) {
  terminateRuns(runIds: $ids, terminatePolicy: SAFE_TERMINATE) { __typename }
}
"""
