//! Listing: every sort field in both directions, filters, keyset pages that never repeat or
//! skip a job while jobs are created in between, and page/offset paging with totals.

use std::collections::{BTreeMap, HashSet};

use jobstore::{
    ClaimRequest, Definition, DefinitionStep, Direction, Execution, Failure, Job, ListQuery,
    NewJob, Pagination, Scope, SortField, State,
};

use crate::support::Fixture;

/// A varied set of jobs: repeated names, sources and targets so ties need the id.
fn seed(f: &Fixture, n: usize) -> Vec<Job> {
    let kinds = ["B2CtoFS", "GPtoFS", "Flush"];
    let mut jobs = Vec::new();
    for i in 0..n {
        f.clock.advance((i % 3) as i64);
        let mut new = NewJob::new(kinds[i % 3])
            .name(format!("job-{}", i % 7))
            .source(format!("src-{}", i % 4))
            .target(format!("tgt-{}", i % 5))
            .created_by(format!("user-{}", i % 2))
            .queue(if i % 2 == 0 { "a" } else { "b" });
        if i % 6 == 0 {
            new = new.upload(true);
        }
        jobs.push(f.store.enqueue(new).unwrap());
    }
    // Move some jobs through their states so state, started and finished times vary.
    for round in 0..3 {
        f.clock.advance(7);
        let claimed = f
            .store
            .claim(&ClaimRequest {
                max: 4,
                ..ClaimRequest::new("w", "a")
            })
            .unwrap();
        for (i, job) in claimed.iter().enumerate() {
            let lease = job.lease().unwrap();
            f.clock.advance(1);
            if (i + round) % 2 == 0 {
                f.store
                    .complete(job.id, &lease, serde_json::json!(1))
                    .unwrap();
            } else {
                f.store.fail(job.id, &lease, Failure::fatal("x")).unwrap();
            }
        }
    }
    f.store
        .list(&ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        })
        .unwrap()
        .jobs
}

fn key(job: &Job, sort: SortField) -> (String, i64) {
    let text = match sort {
        SortField::Id => format!("{:020}", job.id),
        SortField::CreatedAt => format!("{:020}", job.created_at),
        SortField::UpdatedAt => format!("{:020}", job.updated_at),
        SortField::State => job.state.as_str().to_owned(),
        SortField::Kind => job.kind.clone(),
        SortField::Name => job.name.clone(),
        SortField::Source => job.source.clone(),
        SortField::Target => job.target.clone(),
        SortField::CreatedBy => job.created_by.clone(),
        SortField::DefinitionId => job.definition_id.clone().unwrap_or_default(),
        SortField::StartedAt => format!("{:020}", job.started_at.unwrap_or(0)),
        SortField::FinishedAt => format!("{:020}", job.finished_at.unwrap_or(0)),
    };
    (text, job.id)
}

#[test]
fn every_sort_field_orders_both_ways_and_pages_through_every_job_once() {
    let f = Fixture::new();
    let all = seed(&f, 40);
    assert_eq!(all.len(), 40);
    for sort in SortField::ALL {
        for direction in [Direction::Asc, Direction::Desc] {
            let mut expected: Vec<i64> = {
                let mut jobs = all.clone();
                jobs.sort_by_key(|job| key(job, sort));
                if direction == Direction::Desc {
                    jobs.reverse();
                }
                jobs.iter().map(|j| j.id).collect()
            };
            // Keyset pages of 7.
            let mut got = Vec::new();
            let mut cursor = None;
            loop {
                let page = f
                    .store
                    .list(&ListQuery {
                        sort: Some(sort),
                        direction,
                        limit: Some(7),
                        page: Pagination::Cursor(cursor.clone()),
                        ..ListQuery::default()
                    })
                    .unwrap();
                got.extend(page.jobs.iter().map(|j| j.id));
                match page.next_cursor {
                    Some(next) => {
                        // The cursor survives its text form.
                        cursor = Some(jobstore::Cursor::decode(&next.encode()).unwrap());
                    }
                    None => break,
                }
            }
            assert_eq!(got, expected, "{sort:?} {direction:?}");
            // Offset pages give the same order.
            let mut offset_ids = Vec::new();
            for page_number in 0..6 {
                let page = f
                    .store
                    .list(&ListQuery {
                        sort: Some(sort),
                        direction,
                        limit: Some(7),
                        page: Pagination::Offset(page_number * 7),
                        count_total: true,
                        ..ListQuery::default()
                    })
                    .unwrap();
                assert_eq!(page.total, Some(40));
                offset_ids.extend(page.jobs.iter().map(|j| j.id));
            }
            expected.truncate(offset_ids.len());
            assert_eq!(offset_ids, expected, "offset {sort:?} {direction:?}");
        }
    }
}

#[test]
fn a_ranked_sort_orders_by_the_ranks_given_then_by_id_with_unlisted_values_last() {
    let f = Fixture::new();
    let all = seed(&f, 30);
    let ranks: BTreeMap<String, i64> = [("Flush".to_owned(), 0), ("B2CtoFS".to_owned(), 1)]
        .into_iter()
        .collect();
    let rank = |job: &Job| ranks.get(&job.kind).copied().unwrap_or(i64::MAX);
    for direction in [Direction::Asc, Direction::Desc] {
        let mut expected: Vec<&Job> = all.iter().collect();
        expected.sort_by_key(|job| (rank(job), job.id));
        if direction == Direction::Desc {
            expected.reverse();
        }
        let expected: Vec<i64> = expected.iter().map(|job| job.id).collect();
        let mut got = Vec::new();
        for page_number in 0..5 {
            let page = f
                .store
                .list(&ListQuery {
                    sort: Some(SortField::Kind),
                    sort_rank: ranks.clone(),
                    direction,
                    limit: Some(7),
                    page: Pagination::Offset(page_number * 7),
                    ..ListQuery::default()
                })
                .unwrap();
            got.extend(page.jobs.iter().map(|job| job.id));
        }
        assert_eq!(got, expected, "{direction:?}");
    }
}

#[test]
fn filters_combine_and_match_any_of_their_values() {
    let f = Fixture::new();
    let all = seed(&f, 40);
    let query = ListQuery {
        states: vec![State::Succeeded, State::Failed],
        kinds: vec!["B2CtoFS".into(), "Flush".into()],
        queues: vec!["a".into()],
        limit: Some(1000),
        count_total: true,
        ..ListQuery::default()
    };
    let page = f.store.list(&query).unwrap();
    let expected: HashSet<i64> = all
        .iter()
        .filter(|j| matches!(j.state, State::Succeeded | State::Failed))
        .filter(|j| j.kind == "B2CtoFS" || j.kind == "Flush")
        .filter(|j| j.queue == "a")
        .map(|j| j.id)
        .collect();
    assert!(!expected.is_empty());
    let got: HashSet<i64> = page.jobs.iter().map(|j| j.id).collect();
    assert_eq!(got, expected);
    assert_eq!(page.total, Some(expected.len() as u64));

    for (query, predicate) in [
        (
            ListQuery {
                sources: vec!["src-1".into()],
                targets: vec!["tgt-2".into(), "tgt-3".into()],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| j.source == "src-1" && (j.target == "tgt-2" || j.target == "tgt-3"))
                as Box<dyn Fn(&Job) -> bool>,
        ),
        (
            ListQuery {
                created_by: vec!["user-1".into()],
                states: vec![State::Open],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| j.created_by == "user-1" && j.state == State::Open),
        ),
        (
            ListQuery {
                created_after: Some(all[30].created_at),
                created_before: Some(all[5].created_at),
                ..ListQuery::default()
            },
            Box::new(|j: &Job| {
                j.created_at >= all[30].created_at && j.created_at < all[5].created_at
            }),
        ),
    ] {
        let query = ListQuery {
            limit: Some(1000),
            ..query
        };
        let got: HashSet<i64> = f
            .store
            .list(&query)
            .unwrap()
            .jobs
            .iter()
            .map(|j| j.id)
            .collect();
        let want: HashSet<i64> = all.iter().filter(|j| predicate(j)).map(|j| j.id).collect();
        assert_eq!(got, want, "{query:?}");
    }
}

#[test]
fn keyset_pages_never_repeat_or_skip_while_jobs_are_created() {
    for direction in [Direction::Desc, Direction::Asc] {
        let f = Fixture::new();
        let before: Vec<i64> = (0..50)
            .map(|_| {
                f.clock.advance(1);
                f.store.enqueue(NewJob::new("export")).unwrap().id
            })
            .collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = f
                .store
                .list(&ListQuery {
                    sort: Some(SortField::CreatedAt),
                    direction,
                    limit: Some(6),
                    page: Pagination::Cursor(cursor),
                    ..ListQuery::default()
                })
                .unwrap();
            seen.extend(page.jobs.iter().map(|j| j.id));
            // New jobs arrive between pages, some with the same millisecond as the last.
            for _ in 0..3 {
                f.store.enqueue(NewJob::new("export")).unwrap();
            }
            f.clock.advance(1);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a job repeated ({direction:?})");
        for id in &before {
            assert!(unique.contains(id), "job {id} skipped ({direction:?})");
        }
    }
}

#[test]
fn admins_list_across_tenants_and_may_narrow_to_one() {
    let f = Fixture::new();
    let acme = f.store.with_scope(Scope::Tenant("acme".into()));
    acme.enqueue(NewJob::new("a")).unwrap();
    f.store.enqueue(NewJob::new("a")).unwrap();
    let admin = f.store.with_scope(Scope::All);
    assert_eq!(admin.list(&ListQuery::default()).unwrap().jobs.len(), 2);
    let only = admin
        .list(&ListQuery {
            tenant: Some("acme".into()),
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(only.jobs.len(), 1);
    assert_eq!(only.jobs[0].tenant, "acme");
    // A tenant asking for another tenant's jobs sees none.
    let peek = acme
        .list(&ListQuery {
            tenant: Some("default".into()),
            ..ListQuery::default()
        })
        .unwrap();
    assert!(peek.jobs.is_empty());
}

/// Jobs of several dialects and definition executions, with few distinct values per sort
/// field (long tie groups), several jobs per millisecond, and some moved through their states.
fn seed_ties(f: &Fixture) -> Vec<Job> {
    let dialects = ["native", "c360", "datacloud", "aep"];
    for i in 0..48_usize {
        if i % 5 == 0 {
            f.clock.advance(1);
        }
        let new = NewJob::new(if i % 3 == 0 { "B2CtoFS" } else { "Flush" })
            .name(format!("job-{}", i % 2))
            .source(format!("src-{}", i % 3 % 2))
            .target(format!("tgt-{}", i / 20))
            .created_by("user")
            .dialect(dialects[i % 4])
            .queue(if i % 3 == 1 { "b" } else { "a" });
        f.store.enqueue(new).unwrap();
    }
    // Definition executions (OCAPI's jobs): one live execution per definition at a time.
    for name in ["nightly", "hourly"] {
        f.store
            .put_definition(Definition::new(
                name,
                "batch",
                vec![DefinitionStep::new("s", "T")],
            ))
            .unwrap();
    }
    for round in 0..4 {
        for name in ["nightly", "hourly"] {
            let execution = Execution {
                dialect: Some("acme".into()),
                ..Execution::default()
            };
            f.store.execute(name, execution).unwrap();
        }
        let definition_queue = Definition::new("x", "batch", Vec::new()).queue;
        let claimed = f
            .store
            .claim(&ClaimRequest {
                max: 2,
                ..ClaimRequest::new("w", &definition_queue)
            })
            .unwrap();
        for job in claimed {
            let lease = job.lease().unwrap();
            if round % 2 == 0 {
                f.store
                    .complete(job.id, &lease, serde_json::json!(1))
                    .unwrap();
            } else {
                f.store.fail(job.id, &lease, Failure::fatal("x")).unwrap();
            }
        }
        f.clock.advance(1);
    }
    // Some native and dialect jobs run, in groups that share their start time.
    for round in 0..3 {
        let claimed = f
            .store
            .claim(&ClaimRequest {
                max: 5,
                ..ClaimRequest::new("w", "a")
            })
            .unwrap();
        for (i, job) in claimed.iter().enumerate() {
            if (i + round) % 3 == 0 {
                continue; // stays running
            }
            let lease = job.lease().unwrap();
            f.store
                .complete(job.id, &lease, serde_json::json!(1))
                .unwrap();
        }
        f.clock.advance(1);
    }
    f.store
        .list(&ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        })
        .unwrap()
        .jobs
}

/// Keyset pages smaller than the tie groups (a page ends inside a group of equal sort values
/// and the next one seeks the rest of that group, then the values past it) list every job
/// exactly once, in order, for every sort field, both directions, with and without the filters
/// the vendor routes send (one dialect, written as a literal for the partial indexes; several
/// dialects, bound; executions of a definition; a state set); offset pages agree.
#[test]
fn keyset_pages_through_tie_groups_list_every_job_once_in_order() {
    let f = Fixture::new();
    let all = seed_ties(&f);
    assert_eq!(all.len(), 56);
    type Filter = (ListQuery, Box<dyn Fn(&Job) -> bool>);
    let filters: Vec<Filter> = vec![
        (ListQuery::default(), Box::new(|_: &Job| true)),
        (
            ListQuery {
                dialects: vec!["c360".into()],
                kinds: vec!["B2CtoFS".into(), "Flush".into()],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| j.dialect == "c360"),
        ),
        (
            ListQuery {
                dialects: vec!["datacloud".into()],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| j.dialect == "datacloud"),
        ),
        (
            ListQuery {
                dialects: vec!["aep".into(), "native".into()],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| j.dialect == "aep" || j.dialect == "native"),
        ),
        (
            ListQuery {
                with_definition: true,
                all_of: vec![ListQuery::default()],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| j.definition_id.is_some()),
        ),
        (
            ListQuery {
                states: vec![State::Queued, State::Running],
                ..ListQuery::default()
            },
            Box::new(|j: &Job| matches!(j.state, State::Queued | State::Running)),
        ),
    ];
    for (filter, keep) in &filters {
        let matching: Vec<&Job> = all.iter().filter(|j| keep(j)).collect();
        assert!(matching.len() >= 8, "{filter:?}");
        for sort in SortField::ALL {
            for direction in [Direction::Asc, Direction::Desc] {
                let mut expected = matching.clone();
                expected.sort_by_key(|job| key(job, sort));
                if direction == Direction::Desc {
                    expected.reverse();
                }
                let expected: Vec<i64> = expected.iter().map(|j| j.id).collect();
                let query = ListQuery {
                    sort: Some(sort),
                    direction,
                    limit: Some(3),
                    ..filter.clone()
                };
                let mut got = Vec::new();
                let mut cursor = None;
                loop {
                    let page = f
                        .store
                        .list(&ListQuery {
                            page: Pagination::Cursor(cursor),
                            ..query.clone()
                        })
                        .unwrap();
                    assert!(page.jobs.len() <= 3);
                    got.extend(page.jobs.iter().map(|j| j.id));
                    assert!(
                        got.len() <= expected.len(),
                        "{sort:?} {direction:?} {filter:?}"
                    );
                    cursor = page.next_cursor;
                    if cursor.is_none() {
                        break;
                    }
                }
                assert_eq!(got, expected, "keyset {sort:?} {direction:?} {filter:?}");
                let mut by_offset = Vec::new();
                for start in (0..expected.len() as u64).step_by(5) {
                    let page = f
                        .store
                        .list(&ListQuery {
                            limit: Some(5),
                            page: Pagination::Offset(start),
                            count_total: true,
                            ..query.clone()
                        })
                        .unwrap();
                    assert_eq!(page.total, Some(expected.len() as u64));
                    by_offset.extend(page.jobs.iter().map(|j| j.id));
                }
                assert_eq!(
                    by_offset, expected,
                    "offset {sort:?} {direction:?} {filter:?}"
                );
            }
        }
    }
}

/// Nested conditions run on a real store as deep as they may nest (64 levels, the query
/// itself counted), each level AND, OR or NOT, and select what the logic says; one level
/// more is refused.
#[test]
fn conditions_nest_64_levels_deep_on_a_real_store() {
    let f = Fixture::new();
    let jobs = seed(&f, 12);
    let queued: Vec<i64> = jobs
        .iter()
        .filter(|job| f.store.get(job.id).unwrap().state == State::Queued)
        .map(|job| job.id)
        .collect();
    assert!(!queued.is_empty());
    let nested = |levels: usize| {
        let mut query = ListQuery {
            states: vec![State::Queued],
            ..ListQuery::default()
        };
        // Two NOTs in a row keep the match; AND and OR with a condition every job meets too.
        for level in 1..levels {
            let everything = ListQuery {
                created_after: Some(i64::MIN),
                ..ListQuery::default()
            };
            query = match level % 4 {
                2 | 3 => ListQuery {
                    none_of: vec![query],
                    ..ListQuery::default()
                },
                0 => ListQuery {
                    all_of: vec![query, everything],
                    ..ListQuery::default()
                },
                _ => ListQuery {
                    any_of: vec![
                        query,
                        ListQuery {
                            ids: vec![0],
                            ..ListQuery::default()
                        },
                    ],
                    ..ListQuery::default()
                },
            };
        }
        ListQuery {
            limit: Some(100),
            ..query
        }
    };
    let deepest = nested(64);
    let found: Vec<i64> = f
        .store
        .list(&deepest)
        .unwrap()
        .jobs
        .iter()
        .map(|job| job.id)
        .collect();
    let mut found_sorted = found.clone();
    found_sorted.sort_unstable();
    let mut expected = queued.clone();
    expected.sort_unstable();
    assert_eq!(found_sorted, expected);
    assert!(matches!(
        f.store.list(&nested(65)),
        Err(jobstore::Error::InvalidInput { .. })
    ));
}
